//! The node's phone line: one call at a time, driven by the node loop.
//!
//! The [`CallSession`] (sans-IO) decides; this file moves bytes for it: invites over the libp2p swarm,
//! the secure channel over the QUIC endpoint (setup and control-stream tasks), user actions from
//! `Node`, and the call history in the store. Tasks talk back to the loop through one bounded
//! channel of [`PhoneEvent`]s.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use libp2p::PeerId;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{NodeError, NodeEvent, Reply, unix_ms};
use crate::call::rate_limit::{Caller, InviteLimiter, RefusedLog};
use crate::call::session::ActionError;
use crate::call::signal::{self, ControlMessage, Invite, InviteReply};
use crate::call::{CallEvent, CallId, CallSession, CallState, EndReason, Input, Output, Role, Timeouts, UserAction};
use crate::crypto::handshake::HandshakeParams;
use crate::crypto::sas::Sas;
use crate::discovery::{FindError, FoundPeer, InviteEvent, RelayRequestError};
use crate::identity::Identity;
use crate::ip_scope::IpScope;
use crate::media::feedback::MediaFeedback;
use crate::media::io::{SinkSpec, SourceSpec};
use crate::media::pipeline::{AudioConfig, AudioPipeline, AudioStats};
use crate::media::video::source::{VideoSinkSpec, VideoSourceSpec};
use crate::media::video_pipeline::{MediaControl, VideoConfig, VideoPipeline, VideoStats};
use crate::name::Name;
use crate::store::{CallDirection, CallOutcome, CallRecord, Contact, Verification};
use crate::transport::channel::{self, CallStream, ChannelCommand, ChannelError, ChannelEvent, SecureChannel};
use crate::transport::{accept, endpoint};

/// Capacity of the tasks → loop channel.
pub(super) const PHONE_EVENTS: usize = 64;

/// What callers who are not contacts get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownCallers {
    /// Their calls ring, marked unknown (the default).
    #[default]
    Ring,
    /// Their calls are refused without ringing.
    Refuse,
}

/// An unknown-callers policy that is neither `ring` nor `refuse`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid unknown-callers policy {0:?}: expected ring or refuse")]
pub struct UnknownCallersError(pub String);

impl FromStr for UnknownCallers {
    type Err = UnknownCallersError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ring" => Ok(UnknownCallers::Ring),
            "refuse" => Ok(UnknownCallers::Refuse),
            other => Err(UnknownCallersError(other.to_owned())),
        }
    }
}

/// How the phone behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSettings {
    /// Answer contacts' calls at once (intercom style; off by default; never for unknown callers).
    pub auto_answer: bool,
    /// What happens with callers who are not contacts.
    pub unknown_callers: UnknownCallers,
    /// The call timers.
    pub timeouts: Timeouts,
    /// Where the QUIC endpoint listens.
    pub media_listen: SocketAddr,
    /// Invite rate limits.
    pub invite_limits: crate::call::rate_limit::InviteLimits,
    /// Where calls' audio comes from and goes to, unless a call says otherwise.
    pub audio: AudioConfig,
    /// Where calls' video comes from and goes to, and the encoder.
    pub video: VideoConfig,
    /// Candidates to advertise instead of the endpoint's own addresses.
    pub advertise: Option<Vec<SocketAddr>>,
}

/// A call's own media choices, over the daemon's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaOverride {
    /// The audio source for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<SourceSpec>,
    /// The audio sink for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<SinkSpec>,
    /// The video source for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_input: Option<VideoSourceSpec>,
    /// The video sink for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_output: Option<VideoSinkSpec>,
}

impl MediaOverride {
    fn apply(&self, base: &AudioConfig) -> AudioConfig {
        AudioConfig {
            input: self.input.clone().unwrap_or_else(|| base.input.clone()),
            output: self.output.clone().unwrap_or_else(|| base.output.clone()),
            bitrate: base.bitrate,
        }
    }

    fn apply_video(&self, base: &VideoConfig) -> VideoConfig {
        VideoConfig {
            input: self.video_input.clone().unwrap_or_else(|| base.input.clone()),
            output: self.video_output.clone().unwrap_or_else(|| base.output.clone()),
            ..base.clone()
        }
    }
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            auto_answer: false,
            unknown_callers: UnknownCallers::Ring,
            timeouts: Timeouts::default(),
            media_listen: "0.0.0.0:0".parse().expect("a valid socket address"),
            invite_limits: Default::default(),
            audio: AudioConfig::default(),
            video: VideoConfig::default(),
            advertise: None,
        }
    }
}

/// One emoji of the SAS, for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SasEmoji {
    /// The emoji.
    pub emoji: String,
    /// Its English name.
    pub name: String,
}

/// A call as `hail status` and the events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The call id.
    pub call_id: CallId,
    /// Who called.
    pub direction: CallDirection,
    /// The other side.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Their contact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Name>,
    /// The caller is not a contact.
    pub unknown: bool,
    /// Where the call is.
    pub state: CallState,
    /// The four emoji, once the secure channel is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas: Option<Vec<SasEmoji>>,
    /// The SAS as one line ("🦊 fox  🌵 cactus  …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_text: Option<String>,
    /// The contact's verification state.
    pub verification: Verification,
    /// We send video (asked for with the call, or switched on since).
    pub video: bool,
    /// The peer sends video; when it does not, `hail status` shows "video paused".
    pub remote_video: bool,
    /// The peer's microphone is muted.
    pub remote_muted: bool,
    /// When the call started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When it was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at_ms: Option<u64>,
    /// Seconds since it was answered (or how long it lasted).
    pub duration_secs: u64,
    /// Our microphone is muted.
    pub muted: bool,
    /// The audio, once it flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioStats>,
    /// The video pipeline (sending and receiving), once the call is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_stats: Option<VideoStats>,
    /// The network path, once the secure channel is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<CallPath>,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// The end reason, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_description: Option<String>,
}

/// The network path a call's media takes, for `hail status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallPath {
    /// `direct_lan` (a private address: the same LAN), `direct_punched` (the peer is behind NAT and
    /// we reached the public mapping it advertised), `direct` (a public address of the peer's own),
    /// `relayed` (through a media relay: `src/relay.rs`).
    pub kind: String,
    /// The peer's address on this path.
    pub remote: String,
    /// QUIC's round-trip time, ms.
    pub rtt_ms: f64,
}

impl CallPath {
    /// Classifies the path to `remote`, given the candidates the peer advertised.
    pub fn classify(remote: SocketAddr, peer_candidates: &[String], rtt: Duration) -> Self {
        let ip = remote.ip();
        let private = |ip| IpScope::of(ip).is_local_network();
        let peer_behind_nat =
            peer_candidates.iter().filter_map(|c| c.parse::<SocketAddr>().ok()).any(|c| private(c.ip()));
        let kind = if private(ip) {
            "direct_lan"
        } else if peer_behind_nat && peer_candidates.contains(&remote.to_string()) {
            "direct_punched"
        } else {
            "direct"
        };
        CallPath { kind: kind.into(), remote: remote.to_string(), rtt_ms: rtt.as_secs_f64() * 1000.0 }
    }
}

/// What tasks tell the node loop.
#[derive(Debug)]
pub(super) enum PhoneEvent {
    /// A QUIC connection arrived with a call stream.
    Inbound { call_id: CallId, stream: CallStream },
    /// The lookup before an invite finished.
    Found { call_id: CallId, result: Result<FoundPeer, FindError> },
    /// The secure channel setup finished.
    Channel { call_id: CallId, result: Result<SecureChannel, ChannelError> },
    /// The running channel reported something.
    Control { call_id: CallId, event: ChannelEvent },
    /// A reflect request finished: our call endpoint's public address, as a reflector saw it.
    Reflexive { result: Result<SocketAddr, ChannelError> },
    /// A media relay answered an allocation (we call) or a join (we are called).
    Relay { call_id: CallId, relay: PeerId, allocate: bool, result: Result<crate::relay::RelayResponse, RelayRequestError> },
}

/// The live call and everything moving bytes for it.
pub(super) struct LiveCall {
    session: CallSession,
    contact: Option<Contact>,
    started_wall_ms: u64,
    invite_request: Option<OutboundRequestId>,
    /// The reply owed to the `call` command, once the call rings (or fails).
    pending_reply: Option<Reply<CallInfo>>,
    /// Inbound streams for the setup task, while it runs.
    setup_inbound: Option<mpsc::Sender<CallStream>>,
    /// Streams that arrive before the setup task starts (the callee may dial before our invite
    /// reply is processed) wait here.
    early_inbound: Option<mpsc::Receiver<CallStream>>,
    setup_task: Option<JoinHandle<()>>,
    channel: Option<mpsc::Sender<ChannelCommand>>,
    remote_muted: bool,
    /// The secure channel's connection and keys, for media.
    media_path: Option<(quinn::Connection, crate::crypto::frame::FrameKeys)>,
    audio_config: AudioConfig,
    audio: Option<AudioPipeline>,
    video_config: VideoConfig,
    video: Option<VideoPipeline>,
    remote_video: bool,
    /// The candidates the peer advertised.
    remote_candidates: Vec<String>,
    /// Our side of a media relay allocation for this call, once granted (dialed late).
    relay_mine: Option<SocketAddr>,
    /// The relay holding an allocation we made for this call (freed when the call ends).
    relay_owned: Option<PeerId>,
    relay_tx: mpsc::Sender<SocketAddr>,
    relay_rx: Option<mpsc::Receiver<SocketAddr>>,
    feedback: Arc<MediaFeedback>,
    muted: bool,
}

impl LiveCall {
    fn new(
        session: CallSession,
        contact: Option<Contact>,
        audio_config: AudioConfig,
        video_config: VideoConfig,
    ) -> Self {
        let remote_video = session.video();
        let (relay_tx, relay_rx) = mpsc::channel(2);
        LiveCall {
            session,
            contact,
            started_wall_ms: unix_ms(SystemTime::now()),
            invite_request: None,
            pending_reply: None,
            setup_inbound: None,
            early_inbound: None,
            setup_task: None,
            channel: None,
            remote_muted: false,
            media_path: None,
            audio_config,
            audio: None,
            video_config,
            video: None,
            remote_video,
            remote_candidates: Vec::new(),
            relay_mine: None,
            relay_owned: None,
            relay_tx,
            relay_rx: Some(relay_rx),
            feedback: Arc::new(MediaFeedback::default()),
            muted: false,
        }
    }

    /// Starts the media once the call is active and the channel up (idempotent): audio, and video
    /// (it receives always; it sends when our video is on).
    fn start_media(&mut self) {
        if self.session.state() != CallState::Active {
            return;
        }
        let Some((conn, keys)) = &self.media_path else { return };
        if self.audio.is_none() {
            match AudioPipeline::start(conn.clone(), keys, self.audio_config.clone(), self.muted, self.feedback.clone())
            {
                Ok(p) => self.audio = Some(p),
                Err(e) => tracing::warn!(error = %e, "audio could not start"),
            }
        }
        if self.video.is_none() {
            let Some(channel) = self.channel.clone() else { return };
            // The video's requests to the peer go out on the control stream; the forwarder ends
            // when the pipeline drops its sender.
            let (control, mut requests) = mpsc::channel::<MediaControl>(8);
            tokio::spawn(async move {
                while let Some(MediaControl::KeyframeRequest) = requests.recv().await {
                    if channel.send(ChannelCommand::Send(ControlMessage::KeyframeRequest.body())).await.is_err() {
                        break;
                    }
                }
            });
            match VideoPipeline::start(
                conn.clone(),
                keys,
                self.video_config.clone(),
                self.session.video(),
                self.remote_video,
                self.feedback.clone(),
                control,
            ) {
                Ok(p) => self.video = Some(p),
                Err(e) => tracing::warn!(error = %e, "video could not start"),
            }
        }
    }

    fn stop_media(&mut self) {
        if let Some(p) = self.audio.take() {
            drop(p.stop());
        }
        if let Some(v) = self.video.take() {
            v.stop();
        }
    }
}

/// The phone: the QUIC endpoint, the settings, the live call, the last one.
pub(super) struct Phone {
    pub endpoint: quinn::Endpoint,
    pub settings: CallSettings,
    pub identity: Identity,
    pub current: Option<LiveCall>,
    pub last: Option<CallInfo>,
    pub limiter: InviteLimiter,
    /// Which refused invites make history records.
    pub refused_log: RefusedLog,
    pub events: mpsc::Sender<PhoneEvent>,
    accept_task: Option<JoinHandle<()>>,
    /// Our call endpoint's address as a public reflector saw it (behind NAT), for candidates.
    pub reflexive: Option<SocketAddr>,
    reflecting: bool,
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
    ) -> Self {
        Phone {
            limiter: InviteLimiter::new(settings.invite_limits),
            refused_log: RefusedLog::default(),
            endpoint,
            settings,
            identity,
            current: None,
            last: None,
            events,
            accept_task: None,
            reflexive: None,
            reflecting: false,
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

    /// Closes everything (node shutdown).
    pub fn stop(&mut self) {
        if let Some(call) = self.current.as_mut() {
            if let Some(t) = call.setup_task.take() {
                t.abort();
            }
        }
        if let Some(t) = self.accept_task.take() {
            t.abort();
        }
        self.endpoint.close(channel::CLOSE_DONE.into(), b"node stopping");
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

    /// The timer of the live call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().and_then(|c| c.session.poll_timeout())
    }

    /// The live call's info, or the last call's.
    pub fn info(&self) -> Option<CallInfo> {
        self.current.as_ref().map(LiveCall::info).or_else(|| self.last.clone())
    }
}

impl LiveCall {
    fn info(&self) -> CallInfo {
        let s = &self.session;
        let now = Instant::now();
        let wall = |t: Instant| self.started_wall_ms + t.saturating_duration_since(s.started()).as_millis() as u64;
        let sas = s.sas();
        CallInfo {
            call_id: s.id(),
            direction: match s.role() {
                Role::Caller => CallDirection::Outgoing,
                Role::Callee => CallDirection::Incoming,
            },
            peer_id: s.peer(),
            contact: self.contact.as_ref().map(|c| c.name.clone()),
            unknown: self.contact.is_none(),
            state: s.state(),
            sas: sas.map(|sas| {
                let emoji = sas.emoji_in(s.sas_table());
                emoji.iter().map(|e| SasEmoji { emoji: e.glyph.into(), name: e.name.into() }).collect()
            }),
            sas_text: sas.map(|sas| sas.text_in(s.sas_table())),
            verification: self.contact.as_ref().map(|c| c.verification).unwrap_or_default(),
            video: s.video(),
            remote_video: self.remote_video,
            remote_muted: self.remote_muted,
            muted: self.muted,
            audio: self.audio.as_ref().map(AudioPipeline::stats),
            video_stats: self.video.as_ref().map(VideoPipeline::stats),
            path: self.media_path.as_ref().filter(|_| s.state() != CallState::Ended).map(|(conn, _)| {
                let mut p = CallPath::classify(conn.remote_address(), &self.remote_candidates, conn.rtt());
                if Some(conn.remote_address()) == self.relay_mine {
                    p.kind = "relayed".into();
                }
                p
            }),
            started_at_ms: self.started_wall_ms,
            answered_at_ms: s.answered_at().map(wall),
            duration_secs: s
                .answered_at()
                .map(|a| s.ended_at().unwrap_or(now).saturating_duration_since(a).as_secs())
                .unwrap_or(0),
            end_reason: s.end_reason().cloned(),
            end_description: s.end_reason().map(EndReason::describe),
        }
    }

    fn record(&self) -> CallRecord {
        let info = self.info();
        let answered = info.answered_at_ms.is_some();
        let outcome = match info.end_reason.clone().unwrap_or(EndReason::ConnectionLost) {
            EndReason::HungUp { .. } => CallOutcome::Completed,
            EndReason::ConnectionLost if answered => CallOutcome::Completed,
            EndReason::Rejected { .. } => CallOutcome::Rejected,
            EndReason::Busy => CallOutcome::Busy,
            EndReason::NoAnswer | EndReason::Cancelled { .. } => CallOutcome::Missed,
            EndReason::Unavailable { .. } => CallOutcome::Refused,
            other => CallOutcome::Failed { reason: other.describe() },
        };
        let ended = self.session.ended_at().unwrap_or_else(Instant::now);
        CallRecord {
            call_id: info.call_id.to_string(),
            peer_id: info.peer_id,
            contact: info.contact,
            direction: info.direction,
            video: info.video,
            started_at_ms: info.started_at_ms,
            answered_at_ms: info.answered_at_ms,
            ended_at_ms: self.started_wall_ms
                + ended.saturating_duration_since(self.session.started()).as_millis() as u64,
            outcome,
        }
    }
}

/// The node loop's call handling. Every method runs on the loop; none blocks.
impl<S: crate::store::Store> super::NodeLoop<S> {
    /// `hail call WHO`: starts a call; the reply comes when it rings or fails.
    pub(super) fn place_call(&mut self, who: String, video: bool, audio: MediaOverride, reply: Reply<CallInfo>) {
        if self.phone.current.is_some() {
            let _ = reply.send(Err(NodeError::InCall));
            return;
        }
        let (peer, contact) = match self.resolve_who(&who) {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if peer == self.config.identity.peer_id() {
            let _ = reply.send(Err(NodeError::SelfContact));
            return;
        }
        let now = Instant::now();
        let call_id = CallId::random();
        let session = CallSession::outgoing(call_id, peer, video, self.phone.settings.timeouts, now);
        let (early_tx, early_rx) = mpsc::channel(8);
        let mut call = LiveCall::new(
            session,
            contact,
            audio.apply(&self.phone.settings.audio),
            audio.apply_video(&self.phone.settings.video),
        );
        call.pending_reply = Some(reply);
        call.setup_inbound = Some(early_tx);
        call.early_inbound = Some(early_rx);
        self.phone.current = Some(call);
        // Find the peer first (LAN, known addresses, DHT); the invite goes over that connection.
        let (tx, rx) = oneshot::channel();
        self.discovery.find(peer, now, tx);
        let events = self.phone.events.clone();
        tokio::spawn(async move {
            let result = rx.await.unwrap_or(Err(FindError::Busy));
            let _ = events.send(PhoneEvent::Found { call_id, result }).await;
        });
        self.drive_call();
    }

    /// A contact name or a PeerId → the peer and its contact entry.
    pub(super) fn resolve_who(&self, who: &str) -> Result<(PeerId, Option<Contact>), NodeError> {
        if let Ok(name) = Name::parse(who) {
            if let Some(contact) = self.db.contact(&name)? {
                return Ok((contact.peer_id, Some(contact)));
            }
        }
        match crate::identity::parse_peer_id(who) {
            Ok(peer) => Ok((peer, self.db.contact_by_peer(&peer)?)),
            Err(_) => Err(NodeError::UnknownPeer(who.to_owned())),
        }
    }

    /// `answer` with this call's audio choices.
    pub(super) fn answer(&mut self, audio: MediaOverride) -> Result<CallInfo, NodeError> {
        let call = self.phone.current.as_mut().ok_or(NodeError::NoCall)?;
        call.audio_config = audio.apply(&call.audio_config);
        call.video_config = audio.apply_video(&call.video_config);
        self.call_action(UserAction::Answer)
    }

    /// `mute` / `unmute`.
    pub(super) fn set_muted(&mut self, muted: bool) -> Result<CallInfo, NodeError> {
        let call = self.phone.current.as_mut().ok_or(NodeError::NoCall)?;
        call.muted = muted;
        if let Some(audio) = &call.audio {
            audio.set_muted(muted);
        }
        let video = call.session.video();
        self.call_action(UserAction::Media { muted, video })
    }

    /// `video on|off`: our video; the peer is told (before the call is answered, it only sets
    /// whether the call starts with our video).
    pub(super) fn set_video(&mut self, on: bool) -> Result<CallInfo, NodeError> {
        let call = self.phone.current.as_mut().ok_or(NodeError::NoCall)?;
        if let Some(video) = &call.video {
            video.set_sending(on);
        }
        let muted = call.muted;
        self.call_action(UserAction::Media { muted, video: on })
    }

    /// `answer`, `reject`, `hangup`, media state.
    pub(super) fn call_action(&mut self, action: UserAction) -> Result<CallInfo, NodeError> {
        let call = self.phone.current.as_mut().ok_or(NodeError::NoCall)?;
        call.session.user(action, Instant::now()).map_err(|ActionError(what)| NodeError::CallAction(what))?;
        let info = call.info();
        self.drive_call();
        Ok(info)
    }

    /// `hail sas confirm CALL EMOJI`: the emoji matched; the contact becomes SAS-verified. The
    /// confirmation names the call and the emoji seen, so one typed for a call that has since
    /// ended or been replaced, or with emoji that are not this call's, verifies nothing.
    pub(super) fn confirm_sas(&mut self, call_id: &str, emoji: &str) -> Result<Contact, NodeError> {
        let Some(call) = self.phone.current.as_ref() else {
            return Err(match &self.phone.last {
                Some(last) if id_matches(&last.call_id, call_id) => {
                    NodeError::CallChanged("that call has ended: confirm the emoji during the call".into())
                }
                _ => NodeError::NoCall,
            });
        };
        let id = call.session.id();
        if !id_matches(&id, call_id) {
            return Err(NodeError::CallChanged(format!(
                "the current call is {id}, not {}: nothing was confirmed (check `hail status`)",
                call_id.chars().filter(char::is_ascii_hexdigit).take(32).collect::<String>()
            )));
        }
        let info = call.info();
        let Some(sas) = info.sas.as_deref() else {
            return Err(NodeError::CallAction("the emoji are not ready yet: wait for the secure connection"));
        };
        if !sas_matches(sas, emoji) {
            return Err(NodeError::SasMismatch(format!(
                "those are not this call's emoji (the call shows {}): nothing was confirmed",
                info.sas_text.unwrap_or_default()
            )));
        }
        let Some(contact) = call.contact.clone() else {
            return Err(NodeError::CallAction("the caller is not a contact: add them first (hail contacts add)"));
        };
        let updated = self.db.update_contact(&contact.name, |c| c.verification = Verification::Sas)?;
        if let Some(call) = self.phone.current.as_mut() {
            call.contact = Some(updated.clone());
        }
        self.emit(NodeEvent::ContactChanged { contact: updated.clone() });
        Ok(updated)
    }

    /// An invite from the swarm, or the answer to ours.
    pub(super) fn on_invite(&mut self, event: InviteEvent) {
        match event {
            InviteEvent::Received { peer, remote_ip, invite, channel } => match serde_json::from_value(invite) {
                Ok(invite) => self.on_incoming_invite(peer, remote_ip, invite, channel),
                // JSON that is not an invite: the channel is dropped unanswered, which closes the
                // stream (as libp2p's codec did when the invite was typed there).
                Err(e) => tracing::info!(%peer, error = %e, "refused an invite that could not be read"),
            },
            InviteEvent::Replied { request, reply } => match serde_json::from_value(reply) {
                Ok(reply) => self.feed_if(Some(request), Input::InviteReplied(reply)),
                Err(e) => self.feed_if(Some(request), Input::InviteFailed(format!("unreadable answer: {e}"))),
            },
            InviteEvent::Failed { request, reason } => self.feed_if(Some(request), Input::InviteFailed(reason)),
        }
    }

    fn feed_if(&mut self, request: Option<OutboundRequestId>, input: Input) {
        let Some(call) = self.phone.current.as_mut() else { return };
        if request.is_some() && call.invite_request != request {
            return;
        }
        call.session.handle(input, Instant::now());
        self.drive_call();
    }

    /// An invite from `peer`. Who is calling is decided first (a blocked caller, or an unknown one
    /// when unknown callers are refused, is turned away before any budget is spent); then contacts
    /// and unknown callers draw on separate budgets (`call::rate_limit`), so throw-away PeerIds
    /// cannot lock contacts out.
    fn on_incoming_invite(
        &mut self,
        peer: PeerId,
        remote_ip: Option<std::net::IpAddr>,
        invite: Invite,
        channel: ResponseChannel<serde_json::Value>,
    ) {
        let now = Instant::now();
        let refuse = |reason: &str| InviteReply::Unavailable { reason: reason.into() };
        if let Err(e) = invite.validate() {
            tracing::info!(%peer, error = %e, "refused a malformed invite");
            self.discovery.reply_invite(channel, reply_json(refuse("malformed invite")));
            return;
        }
        let contact = match self.db.contact_by_peer(&peer) {
            Ok(contact) => contact,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot read the contacts: refusing the call");
                self.discovery.reply_invite(channel, reply_json(refuse("try again later")));
                return;
            }
        };
        let blocked = contact.as_ref().is_some_and(|c| c.blocked);
        let unknown_refused = contact.is_none() && self.phone.settings.unknown_callers == UnknownCallers::Refuse;
        if blocked || unknown_refused {
            tracing::info!(%peer, blocked, "refused a call without ringing");
            let reply = if blocked {
                // A blocked caller is not told it is blocked.
                refuse("not accepting calls")
            } else {
                InviteReply::Rejected { reason: "not accepting calls from people who are not contacts".into() }
            };
            self.discovery.reply_invite(channel, reply_json(reply));
            self.record_refused(peer, contact, &invite, now);
            return;
        }
        let caller = if contact.is_some() { Caller::Contact } else { Caller::Unknown(remote_ip) };
        if let Err(over) = self.phone.limiter.admit(peer, caller, now) {
            tracing::info!(%peer, ?remote_ip, ?over, "refused an invite over its budget");
            self.discovery.reply_invite(channel, reply_json(refuse("too many calls; try again later")));
            return;
        }
        if self.phone.current.is_some() {
            self.discovery.reply_invite(channel, reply_json(InviteReply::Busy));
            return;
        }
        let candidates = self.phone.candidates(&self.discovery.host_ips());
        if candidates.is_empty() {
            self.discovery.reply_invite(channel, reply_json(refuse("no network path for calls")));
            return;
        }
        let session = CallSession::incoming(
            invite.call_id,
            peer,
            invite.video,
            invite.candidates.clone(),
            invite.sas_table(),
            self.phone.settings.timeouts,
            now,
        );
        let auto_answer = self.phone.settings.auto_answer && contact.is_some();
        self.phone.current =
            Some(LiveCall::new(session, contact, self.phone.settings.audio.clone(), self.phone.settings.video.clone()));
        self.discovery.reply_invite(channel, reply_json(InviteReply::ringing(candidates, invite.sas_table())));
        if let Some((relay, _)) = invite.candidates.iter().find_map(|c| crate::transport::candidate::parse_relay(c)) {
            let request = crate::relay::RelayRequest::Join { call_id: invite.call_id };
            self.ask_relay(invite.call_id, relay, request, false);
        }
        if let Some(info) = self.phone.info() {
            self.emit(NodeEvent::CallIncoming { call: info });
        }
        if auto_answer {
            if let Some(call) = self.phone.current.as_mut() {
                let _ = call.session.user(UserAction::Answer, now);
            }
        }
        self.drive_call();
    }

    /// Records a call refused without ringing, unless [`RefusedLog`] coalesces it.
    fn record_refused(&mut self, peer: PeerId, contact: Option<Contact>, invite: &Invite, at: Instant) {
        if !self.phone.refused_log.should_record(peer, at) {
            return;
        }
        let now = unix_ms(SystemTime::now());
        let record = CallRecord {
            call_id: invite.call_id.to_string(),
            peer_id: peer,
            contact: contact.map(|c| c.name),
            direction: CallDirection::Incoming,
            video: invite.video,
            started_at_ms: now,
            answered_at_ms: None,
            ended_at_ms: now,
            outcome: CallOutcome::Refused,
        };
        if let Err(e) = self.db.record_call(&record) {
            tracing::warn!(error = %e, "cannot record a refused call");
        }
    }

    /// Something from a call task.
    pub(super) fn on_phone_event(&mut self, event: PhoneEvent) {
        let now = Instant::now();
        match event {
            PhoneEvent::Relay { call_id, relay, allocate, result } => {
                let Some(call) = self.phone.current.as_mut().filter(|c| c.session.id() == call_id) else { return };
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
                    let _ = call.relay_tx.try_send(mine);
                }
                if allocate && call.session.state() == CallState::Dialing {
                    let extra = granted.map(|(_, theirs)| vec![crate::transport::candidate::format_relay(&relay, theirs)]);
                    self.send_invite(call_id, extra.unwrap_or_default());
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
            PhoneEvent::Inbound { call_id, stream } => {
                let target = self.phone.current.as_ref().filter(|c| c.session.id() == call_id);
                match target.and_then(|c| c.setup_inbound.clone()) {
                    Some(tx) => {
                        if let Err(mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s)) =
                            tx.try_send(stream)
                        {
                            s.conn.close(channel::CLOSE_UNWANTED.into(), b"busy");
                        }
                    }
                    None => stream.conn.close(channel::CLOSE_UNWANTED.into(), b"no such call"),
                }
            }
            PhoneEvent::Found { call_id, result } => {
                let candidates = self.phone.candidates(&self.discovery.host_ips());
                let Some(call) = self.phone.current.as_mut().filter(|c| c.session.id() == call_id) else { return };
                if call.session.state() != CallState::Dialing {
                    return;
                }
                match result {
                    Ok(_) if candidates.is_empty() => {
                        call.session.handle(Input::InviteFailed("this node has no network path for calls".into()), now);
                        self.drive_call();
                    }
                    Ok(_) => {
                        // Behind NAT: a media relay allocation first, in case no direct path opens.
                        let peer = call.session.peer();
                        match self.discovery.media_relay_peer().filter(|_| self.discovery.is_private()) {
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
            PhoneEvent::Channel { call_id, result } => {
                let Some(call) = self.phone.current.as_mut().filter(|c| c.session.id() == call_id) else {
                    if let Ok(ch) = result {
                        ch.conn.close(channel::CLOSE_UNWANTED.into(), b"call over");
                    }
                    return;
                };
                call.setup_inbound = None;
                call.setup_task = None;
                match result {
                    Ok(secure) => {
                        let sas: Sas = secure.established.sas;
                        let (cmd_tx, cmd_rx) = mpsc::channel(32);
                        let (ev_tx, mut ev_rx) = mpsc::channel(32);
                        let events = self.phone.events.clone();
                        call.media_path = Some((secure.conn.clone(), secure.established.frame_keys.clone()));
                        tokio::spawn(channel::run_control(secure, cmd_rx, ev_tx));
                        tokio::spawn(async move {
                            while let Some(event) = ev_rx.recv().await {
                                if events.send(PhoneEvent::Control { call_id, event }).await.is_err() {
                                    break;
                                }
                            }
                        });
                        call.channel = Some(cmd_tx);
                        call.session.handle(Input::ChannelUp(sas), now);
                    }
                    Err(e) => {
                        tracing::warn!(%call_id, error = %e, "secure channel failed");
                        let reason = if matches!(e, ChannelError::SecondHandshake) {
                            e.to_string()
                        } else if e.is_security() {
                            let who = match &call.contact {
                                Some(c) => format!("the peer answering as your contact '{}'", c.name),
                                None => format!("the peer answering as {}", call.session.peer()),
                            };
                            format!("{who} failed the identity check ({e})")
                        } else {
                            e.to_string()
                        };
                        call.session.handle(Input::ChannelFailed { security: e.is_security(), reason }, now);
                    }
                }
                self.drive_call();
            }
            PhoneEvent::Control { call_id, event } => {
                let Some(call) = self.phone.current.as_mut().filter(|c| c.session.id() == call_id) else { return };
                match event {
                    ChannelEvent::Control(body) => match ControlMessage::decode(&body) {
                        Ok(msg) => call.session.handle(Input::Control(msg), now),
                        // A malformed message from an authenticated peer: note it, keep the call.
                        Err(e) => tracing::warn!(error = %e, "ignored a malformed control message"),
                    },
                    ChannelEvent::Closed(reason) => {
                        call.session.handle(Input::ChannelFailed { security: false, reason }, now)
                    }
                }
                self.drive_call();
            }
        }
    }

    /// Call timers.
    pub(super) fn on_call_timeout(&mut self, now: Instant) {
        if let Some(call) = self.phone.current.as_mut() {
            call.session.handle_timeout(now);
            self.drive_call();
        }
    }

    /// Drains the session's outputs and acts on them.
    fn drive_call(&mut self) {
        loop {
            let Some(call) = self.phone.current.as_mut() else { return };
            let Some(output) = call.session.poll_output() else { break };
            match output {
                Output::OpenChannel { remote_candidates } => self.open_channel(remote_candidates),
                Output::Send(msg) => {
                    if let Some(tx) = &call.channel {
                        if tx.try_send(ChannelCommand::Send(msg.body())).is_err() {
                            tracing::warn!("control channel congested; a message was dropped");
                        }
                    }
                }
                Output::CloseChannel => {
                    call.stop_media();
                    if let Some(tx) = call.channel.take() {
                        let _ = tx.try_send(ChannelCommand::Close);
                    }
                    if let Some(task) = call.setup_task.take() {
                        task.abort();
                    }
                    call.setup_inbound = None;
                }
                Output::Event(event) => self.on_call_event(event),
            }
        }
        let ended = self.phone.current.as_ref().is_some_and(|c| c.session.state() == CallState::Ended);
        if ended {
            let call = self.phone.current.take().expect("checked above");
            if let Some(relay) = call.relay_owned {
                // Free the relay's ports now rather than after its idle timeout.
                let (tx, _) = oneshot::channel();
                let request = crate::relay::RelayRequest::Release { call_id: call.session.id() };
                self.discovery.relay_request(relay, request, tx);
            }
            if let Err(e) = self.db.record_call(&call.record()) {
                tracing::warn!(error = %e, "cannot record the call in the history");
            }
            self.phone.last = Some(call.info());
        }
    }

    fn on_call_event(&mut self, event: CallEvent) {
        let Some(call) = self.phone.current.as_mut() else { return };
        let ringing_or_ended = matches!(event, CallEvent::State(CallState::Ringing) | CallEvent::Ended(_));
        if let CallEvent::RemoteMedia { muted, video } = event {
            call.remote_muted = muted;
            call.remote_video = video;
            if let Some(v) = &call.video {
                v.set_remote_sending(video);
            }
        }
        if let CallEvent::KeyframeRequested = event {
            if let Some(v) = &call.video {
                v.on_keyframe_request();
            }
            return;
        }
        if let CallEvent::State(CallState::Active) = event {
            // Each side states its media at the start, so neither has to guess the other's.
            let (muted, video) = (call.muted, call.session.video());
            let _ = call.session.user(UserAction::Media { muted, video }, Instant::now());
            call.start_media();
        }
        // The `call` command is answered once the call rings or fails.
        if ringing_or_ended && call.session.role() == Role::Caller {
            if let Some(reply) = call.pending_reply.take() {
                let info = call.info();
                let result = match &info.end_reason {
                    Some(reason) => Err(NodeError::CallEnded(reason.clone())),
                    None => Ok(info),
                };
                let _ = reply.send(result);
            }
        }
        let info = call.info();
        let event = match event {
            CallEvent::State(_) => NodeEvent::CallState { call: info },
            CallEvent::SasReady(_) => NodeEvent::CallSas { call: info },
            CallEvent::RemoteMedia { .. } | CallEvent::KeyframeRequested => NodeEvent::CallMedia { call: info },
            CallEvent::Ended(_) => NodeEvent::CallEnded { call: info },
        };
        self.emit(event);
    }

    /// Sends the invite for the dialing call, with our candidates and `extra` ones (a relay's).
    fn send_invite(&mut self, call_id: CallId, extra: Vec<String>) {
        let mut candidates = self.phone.candidates(&self.discovery.host_ips());
        let Some(call) = self.phone.current.as_mut().filter(|c| c.session.id() == call_id) else { return };
        candidates.truncate(signal::MAX_CANDIDATES - extra.len().min(signal::MAX_CANDIDATES));
        candidates.extend(extra);
        let invite = call.session.invite(candidates);
        let request = self.discovery.send_invite(call.session.peer(), invite_json(&invite));
        call.invite_request = Some(request);
    }

    /// Asks a media relay for an allocation (`allocate`, we call) or to join one (we are called);
    /// the answer comes back as [`PhoneEvent::Relay`] (within 3 s).
    fn ask_relay(&mut self, call_id: CallId, relay: PeerId, request: crate::relay::RelayRequest, allocate: bool) {
        let (tx, rx) = oneshot::channel();
        self.discovery.relay_request(relay, request, tx);
        let events = self.phone.events.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(Duration::from_secs(3), rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(RelayRequestError::Dropped),
                Err(_) => Err(RelayRequestError::TimedOut),
            };
            let _ = events.send(PhoneEvent::Relay { call_id, relay, allocate, result }).await;
        });
    }

    fn open_channel(&mut self, remote_candidates: Vec<String>) {
        let Some(call) = self.phone.current.as_mut() else { return };
        call.remote_candidates = remote_candidates.clone();
        let candidates = signal::parse_candidates(&remote_candidates).unwrap_or_default();
        let params = HandshakeParams {
            static_secret: self.phone.identity.noise_static_secret(),
            binding: self.phone.identity.noise_binding(),
            call_id: call.session.id().0,
            tls_exporter: [0; 32],
            // The callee's key is pinned by the PeerId called; the caller's by the PeerId the
            // libp2p connection authenticated when the invite came in.
            expected_peer: Some(call.session.peer()),
            fixed_ephemeral: None,
        };
        let inbound_rx = match (call.early_inbound.take(), call.setup_inbound.clone()) {
            (Some(rx), Some(_)) => rx,
            _ => {
                let (tx, rx) = mpsc::channel(8);
                call.setup_inbound = Some(tx);
                rx
            }
        };
        let relayed = call.relay_rx.take().unwrap_or_else(|| mpsc::channel(1).1);
        let (endpoint, role, call_id) = (self.phone.endpoint.clone(), call.session.role(), call.session.id());
        let events = self.phone.events.clone();
        let setup_limit = self.phone.settings.timeouts.setup + Duration::from_secs(1);
        call.setup_task = Some(tokio::spawn(async move {
            let setup = channel::establish(endpoint, role, call_id, candidates, params, inbound_rx, relayed);
            let result = tokio::time::timeout(setup_limit, setup)
                .await
                .unwrap_or_else(|_| Err(ChannelError::Network("no candidate answered in time".into())));
            let _ = events.send(PhoneEvent::Channel { call_id, result }).await;
        }));
    }
}

/// Whether `given` names call `id`: the whole id or a prefix of at least 6 hex digits.
fn id_matches(id: &CallId, given: &str) -> bool {
    let given = given.trim().to_ascii_lowercase();
    given.len() >= 6 && id.to_string().starts_with(&given)
}

/// Whether `given` is the four emoji of `sas`, in order: as glyphs, as names, or as "glyph name"
/// pairs (what `hail call` prints), ignoring case, commas and spacing.
fn sas_matches(sas: &[SasEmoji], given: &str) -> bool {
    let normal = |s: &str| {
        s.to_lowercase().replace(',', " ").replace('\u{fe0f}', "").split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let given = normal(given);
    if sas.is_empty() || given.is_empty() {
        return false;
    }
    let glyphs = sas.iter().map(|e| e.emoji.as_str()).collect::<Vec<_>>();
    let names = sas.iter().map(|e| e.name.as_str()).collect::<Vec<_>>();
    let pairs = sas.iter().map(|e| format!("{} {}", e.emoji, e.name)).collect::<Vec<_>>();
    [glyphs.join(""), glyphs.join(" "), names.join(" "), pairs.join(" ")].iter().any(|form| normal(form) == given)
}

/// An invite as discovery carries it. Plain data (strings and numbers) always has a JSON form.
fn invite_json(invite: &Invite) -> serde_json::Value {
    serde_json::to_value(invite).expect("an invite is plain data")
}

/// An invite reply as discovery carries it.
fn reply_json(reply: InviteReply) -> serde_json::Value {
    serde_json::to_value(reply).expect("an invite reply is plain data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sas_confirmation_must_name_the_call_and_its_emoji() {
        let id = CallId([0xAB; 16]);
        assert!(id_matches(&id, "abababab"));
        assert!(id_matches(&id, &id.to_string().to_uppercase()));
        assert!(!id_matches(&id, "abab"), "too short a prefix names nothing");
        assert!(!id_matches(&id, "abababac"));
        let sas: Vec<SasEmoji> = [("🦊", "fox"), ("🌵", "cactus"), ("🚀", "rocket"), ("⚓", "anchor")]
            .iter()
            .map(|(e, n)| SasEmoji { emoji: (*e).into(), name: (*n).into() })
            .collect();
        for ok in [
            "fox cactus rocket anchor",
            "Fox, Cactus, Rocket, Anchor",
            "🦊🌵🚀⚓",
            "🦊 🌵 🚀 ⚓",
            "🦊 fox  🌵 cactus  🚀 rocket  ⚓ anchor",
        ] {
            assert!(sas_matches(&sas, ok), "{ok}");
        }
        for bad in ["", "fox cactus rocket", "cactus fox rocket anchor", "fox cactus rocket anchor fox", "🦊🌵🚀🐙"]
        {
            assert!(!sas_matches(&sas, bad), "{bad}");
        }
    }

    #[test]
    fn paths_are_told_apart_by_the_address_and_the_peers_candidates() {
        let rtt = Duration::from_millis(12);
        let lan = CallPath::classify("192.168.1.2:4000".parse().unwrap(), &["192.168.1.2:4000".into()], rtt);
        assert_eq!((lan.kind.as_str(), lan.rtt_ms), ("direct_lan", 12.0));
        // The peer advertised a home address and its NAT's mapping; we reached the mapping.
        let nat = ["192.168.2.2:5000".to_owned(), "11.0.0.12:5000".to_owned()];
        assert_eq!(CallPath::classify("11.0.0.12:5000".parse().unwrap(), &nat, rtt).kind, "direct_punched");
        // A public peer (only public candidates), or an address it did not advertise.
        assert_eq!(CallPath::classify("11.0.0.1:5001".parse().unwrap(), &["11.0.0.1:5001".into()], rtt).kind, "direct");
        assert_eq!(CallPath::classify("11.0.0.12:6000".parse().unwrap(), &nat, rtt).kind, "direct");
        // Link-local IPv6 and IPv4-mapped private addresses are on the LAN too (ip_scope).
        for lan in ["[fe80::1]:4000", "[::ffff:192.168.1.2]:4000"] {
            assert_eq!(CallPath::classify(lan.parse().unwrap(), &[], rtt).kind, "direct_lan", "{lan}");
        }
    }
}
