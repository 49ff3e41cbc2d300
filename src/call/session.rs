//! The call state machine, sans-IO (`protocols/signaling-v1.md`, "States").
//!
//! ```text
//! caller:  Dialing ──ringing──▶ Ringing ──accept──▶ Active ──hangup──▶ Ending ──ack/linger──▶ Ended
//! callee:  Ringing ──answer──▶ (Connecting, until the secure channel is up) ──▶ Active ──▶ …
//! ```
//!
//! Drive it like quinn-proto or str0m: feed [`CallSession::handle`] (inputs) and
//! [`CallSession::handle_timeout`] (when [`CallSession::poll_timeout`] says), then drain
//! [`CallSession::poll_output`] until it returns `None`. It never reads the clock and does no IO.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use super::CallId;
use super::signal::{self, ControlMessage, Invite, InviteReply};
use crate::crypto::sas::{Sas, SasTable};

/// Which side of the call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// We placed the call (and initiate the handshake).
    Caller,
    /// We were called.
    Callee,
}

impl From<Role> for crate::crypto::handshake::HandshakeRole {
    /// The caller initiates the handshake.
    fn from(role: Role) -> Self {
        match role {
            Role::Caller => Self::Initiator,
            Role::Callee => Self::Responder,
        }
    }
}

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// The invite is on its way (caller).
    Dialing,
    /// The callee's phone rings; the secure channel is set up meanwhile.
    Ringing,
    /// The callee answered; waiting for the secure channel to finish.
    Connecting,
    /// Talking.
    Active,
    /// Hung up; waiting for the peer to acknowledge (bounded).
    Ending,
    /// Over.
    Ended,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EndReason {
    /// Hung up after it was answered.
    HungUp {
        /// The peer hung up (else we did).
        by_peer: bool,
    },
    /// Declined while ringing.
    Rejected {
        /// The peer declined (else we did).
        by_peer: bool,
    },
    /// Hung up before it was answered.
    Cancelled {
        /// The peer cancelled (for a callee: a missed call).
        by_peer: bool,
    },
    /// Nobody answered within the ring timeout.
    NoAnswer,
    /// The callee was in another call.
    Busy,
    /// The callee refused without ringing.
    Unavailable {
        /// What the callee said.
        reason: String,
    },
    /// The invite could not be delivered.
    Unreachable {
        /// Why.
        reason: String,
    },
    /// The secure channel could not be set up.
    SetupFailed {
        /// Why.
        reason: String,
    },
    /// The peer could not prove it is who it should be: possibly a man in the middle.
    Security {
        /// What did not match.
        reason: String,
    },
    /// The connection died during the call.
    ConnectionLost,
}

impl EndReason {
    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            EndReason::HungUp { by_peer: true } => "the other side hung up".into(),
            EndReason::HungUp { by_peer: false } => "you hung up".into(),
            EndReason::Rejected { by_peer: true } => "the call was declined".into(),
            EndReason::Rejected { by_peer: false } => "you declined the call".into(),
            EndReason::Cancelled { by_peer: true } => "missed call: the caller hung up".into(),
            EndReason::Cancelled { by_peer: false } => "you cancelled the call".into(),
            EndReason::NoAnswer => "no answer".into(),
            EndReason::Busy => "busy: they are in another call".into(),
            EndReason::Unavailable { reason } => format!("unavailable: {reason}"),
            EndReason::Unreachable { reason } => format!("unreachable: {reason}"),
            EndReason::SetupFailed { reason } => format!("the secure connection failed: {reason}"),
            EndReason::Security { reason } => format!("SECURITY: {reason}; the call was aborted"),
            EndReason::ConnectionLost => "the connection was lost".into(),
        }
    }
}

/// How much longer than the ring time a dialing caller waits for its lookup's answer.
pub const FIND_GRACE: Duration = Duration::from_secs(2);

/// The timers of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long the invite may take once the peer is found (the caller looks for the peer for as
    /// long as the call would ring: [`CallSession::dialing_deadline`]).
    pub invite: Duration,
    /// How long it may ring.
    pub ring: Duration,
    /// How long the secure channel may take once it rings.
    pub setup: Duration,
    /// Send a ping after this long without sending.
    pub keepalive: Duration,
    /// Give up after this long without hearing from the peer.
    pub idle: Duration,
    /// How long to wait for the acknowledgement of a hangup.
    pub linger: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            invite: Duration::from_secs(25),
            ring: Duration::from_secs(45),
            setup: Duration::from_secs(15),
            keepalive: Duration::from_secs(5),
            idle: Duration::from_secs(20),
            linger: Duration::from_secs(2),
        }
    }
}

/// What the user can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    /// Pick up (callee).
    Answer,
    /// Decline (callee, while ringing).
    Reject,
    /// End the call, whatever its state.
    Hangup,
    /// Tell the peer our media state.
    Media {
        /// Microphone muted.
        muted: bool,
        /// Sending video.
        video: bool,
    },
}

/// What happened, fed to [`CallSession::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The callee answered the invite (caller).
    InviteReplied(InviteReply),
    /// The invite could not be delivered (caller).
    InviteFailed(String),
    /// The secure channel is up; both sides computed this SAS.
    ChannelUp(Sas),
    /// The secure channel failed or closed.
    ChannelFailed {
        /// A security failure (wrong identity, bad commitment) rather than a network one.
        security: bool,
        /// Why.
        reason: String,
    },
    /// A message from the peer on the secure channel.
    Control(ControlMessage),
}

/// What the session asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Set up the QUIC connection and the Noise handshake (to these candidates of the peer).
    OpenChannel {
        /// The peer's `ip:port` candidates.
        remote_candidates: Vec<String>,
    },
    /// Send on the secure channel.
    Send(ControlMessage),
    /// Close the secure channel (after flushing what was sent).
    CloseChannel,
    /// Tell the user.
    Event(CallEvent),
}

/// What the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The state changed.
    State(CallState),
    /// The four emoji are ready to compare.
    SasReady(Sas),
    /// The peer's media state changed.
    RemoteMedia {
        /// Their microphone is muted.
        muted: bool,
        /// They send video.
        video: bool,
    },
    /// The call is over.
    Ended(EndReason),
}

/// A user action that makes no sense now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(pub &'static str);

/// One call, from invite to the end.
#[derive(Debug)]
pub struct CallSession {
    id: CallId,
    role: Role,
    peer: PeerId,
    video: bool,
    timeouts: Timeouts,
    state: CallState,
    started: Instant,
    /// When the caller's lookup found the peer (the invite's own time starts then).
    found_at: Option<Instant>,
    state_since: Instant,
    channel_requested: bool,
    channel_up: bool,
    sas: Option<Sas>,
    /// The newest SAS table we may use (a caller offers every version up to it).
    newest_sas_table: SasTable,
    /// The table the call's emoji are rendered with: agreed in the invite and its reply.
    sas_table: SasTable,
    answered_at: Option<Instant>,
    ended_at: Option<Instant>,
    last_sent: Instant,
    last_received: Instant,
    /// Sent once the channel is up (an answer or a hangup given before it was).
    pending: Option<ControlMessage>,
    linger_until: Option<Instant>,
    end_reason: Option<EndReason>,
    outputs: VecDeque<Output>,
}

impl CallSession {
    /// A call we place: it starts in `Dialing`; send the invite, then feed its reply.
    pub fn outgoing(id: CallId, peer: PeerId, video: bool, timeouts: Timeouts, now: Instant) -> Self {
        let mut s = Self::new(id, Role::Caller, peer, video, timeouts, now, CallState::Dialing);
        s.outputs.push_back(Output::Event(CallEvent::State(CallState::Dialing)));
        s
    }

    /// A call we received and accepted to ring: it starts in `Ringing` and asks for the channel.
    /// `sas_table` is the one picked from the invite's offer ([`Invite::sas_table`]), named in
    /// the `ringing` reply.
    pub fn incoming(
        id: CallId,
        peer: PeerId,
        video: bool,
        caller_candidates: Vec<String>,
        sas_table: SasTable,
        timeouts: Timeouts,
        now: Instant,
    ) -> Self {
        let mut s = Self::new(id, Role::Callee, peer, video, timeouts, now, CallState::Ringing);
        s.sas_table = sas_table;
        s.channel_requested = true;
        s.outputs.push_back(Output::OpenChannel { remote_candidates: caller_candidates });
        s.outputs.push_back(Output::Event(CallEvent::State(CallState::Ringing)));
        s
    }

    fn new(
        id: CallId,
        role: Role,
        peer: PeerId,
        video: bool,
        timeouts: Timeouts,
        now: Instant,
        state: CallState,
    ) -> Self {
        CallSession {
            id,
            role,
            peer,
            video,
            timeouts,
            state,
            started: now,
            found_at: None,
            state_since: now,
            channel_requested: false,
            channel_up: false,
            sas: None,
            newest_sas_table: SasTable::LATEST,
            sas_table: SasTable::V1,
            answered_at: None,
            ended_at: None,
            last_sent: now,
            last_received: now,
            pending: None,
            linger_until: None,
            end_reason: None,
            outputs: VecDeque::new(),
        }
    }

    /// The call id.
    pub fn id(&self) -> CallId {
        self.id
    }
    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The other side.
    pub fn peer(&self) -> PeerId {
        self.peer
    }
    /// The state.
    pub fn state(&self) -> CallState {
        self.state
    }
    /// Whether video was asked for.
    pub fn video(&self) -> bool {
        self.video
    }
    /// The SAS, once the channel is up.
    pub fn sas(&self) -> Option<Sas> {
        self.sas
    }
    /// The table to render the SAS with (for a caller: version 1 until the callee names one).
    pub fn sas_table(&self) -> SasTable {
        self.sas_table
    }

    /// A caller that offers SAS tables only up to `newest` (the default is [`SasTable::LATEST`]);
    /// what an older hail does, and what the tests use to play one.
    pub fn with_newest_sas_table(mut self, newest: SasTable) -> Self {
        self.newest_sas_table = newest;
        self
    }

    /// The invite for this call (caller), offering every SAS table up to the newest we have.
    pub fn invite(&self, candidates: Vec<String>) -> Invite {
        Invite {
            version: signal::VERSION,
            call_id: self.id,
            candidates,
            video: self.video,
            sas_tables: Some(self.newest_sas_table.offer()),
            group: None,
        }
    }

    /// The caller's lookup found the peer at `now`: the invite has [`Timeouts::invite`] from now.
    /// Until then the caller keeps looking for as long as the call would ring
    /// ([`CallSession::dialing_deadline`]).
    pub fn peer_found(&mut self, now: Instant) {
        if self.state == CallState::Dialing && self.found_at.is_none() {
            self.found_at = Some(now);
        }
    }

    /// When a dialing call gives up: [`Timeouts::invite`] after the peer was found, or, while it is
    /// still being looked for, after the longer of the invite time and the ring time (plus
    /// [`FIND_GRACE`], so the lookup's own "not found", which says what was tried, comes first).
    pub fn dialing_deadline(&self) -> Instant {
        let t = &self.timeouts;
        match self.found_at {
            Some(found) => found + t.invite,
            None => self.started + t.invite.max(t.ring + FIND_GRACE),
        }
    }

    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }
    /// When it was answered.
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered_at
    }
    /// When it ended.
    pub fn ended_at(&self) -> Option<Instant> {
        self.ended_at
    }
    /// Why it ended.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.end_reason.as_ref()
    }

    /// The next thing to do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`CallSession::handle_timeout`] must be called next (`None`: nothing scheduled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timeouts;
        match self.state {
            CallState::Dialing => Some(self.dialing_deadline()),
            CallState::Ringing => {
                let ring = self.state_since + t.ring;
                Some(if self.channel_up { ring } else { ring.min(self.state_since + t.setup) })
            }
            CallState::Connecting => Some(self.state_since + t.setup),
            CallState::Active => Some((self.last_sent + t.keepalive).min(self.last_received + t.idle)),
            CallState::Ending => self.linger_until,
            CallState::Ended => None,
        }
    }

    /// Acts on the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let t = self.timeouts;
        match self.state {
            CallState::Dialing if now >= self.dialing_deadline() => {
                self.finish(EndReason::Unreachable { reason: "the invite was not answered in time".into() }, now)
            }
            CallState::Ringing if now >= self.state_since + t.ring => {
                self.end(EndReason::NoAnswer, Some(ControlMessage::Hangup), now)
            }
            CallState::Ringing | CallState::Connecting if !self.channel_up && now >= self.state_since + t.setup => self
                .finish(EndReason::SetupFailed { reason: "the secure connection did not come up in time".into() }, now),
            CallState::Active => {
                if now >= self.last_received + t.idle {
                    self.finish(EndReason::ConnectionLost, now);
                } else if now >= self.last_sent + t.keepalive {
                    self.send(ControlMessage::Ping, now);
                }
            }
            CallState::Ending if self.linger_until.is_some_and(|l| now >= l) => {
                let reason = self.end_reason.clone().unwrap_or(EndReason::ConnectionLost);
                self.finish(reason, now);
            }
            _ => {}
        }
    }

    /// Feeds an event from the network.
    pub fn handle(&mut self, input: Input, now: Instant) {
        if self.state == CallState::Ended {
            return;
        }
        match input {
            Input::InviteReplied(reply) if self.state == CallState::Dialing => match reply {
                InviteReply::Ringing { candidates, sas_table, .. } => {
                    let version = sas_table.unwrap_or(1);
                    match SasTable::from_version(version).filter(|t| *t <= self.newest_sas_table) {
                        Some(table) => self.sas_table = table,
                        None => {
                            let reason = format!("the callee chose SAS emoji table {version}, which we did not offer");
                            return self.finish(EndReason::SetupFailed { reason }, now);
                        }
                    }
                    self.channel_requested = true;
                    self.outputs.push_back(Output::OpenChannel { remote_candidates: candidates });
                    self.set_state(CallState::Ringing, now);
                }
                InviteReply::Busy => self.finish(EndReason::Busy, now),
                InviteReply::Unavailable { reason } => self.finish(EndReason::Unavailable { reason }, now),
                InviteReply::Rejected { reason } => self.finish(EndReason::Unavailable { reason }, now),
            },
            Input::InviteFailed(reason) if self.state == CallState::Dialing => {
                self.finish(EndReason::Unreachable { reason }, now)
            }
            Input::InviteReplied(_) | Input::InviteFailed(_) => {}
            Input::ChannelUp(sas) => self.on_channel_up(sas, now),
            Input::ChannelFailed { security, reason } => {
                let reason = if security {
                    EndReason::Security { reason }
                } else if self.state == CallState::Active {
                    EndReason::ConnectionLost
                } else if self.state == CallState::Ending {
                    self.end_reason.clone().unwrap_or(EndReason::ConnectionLost)
                } else {
                    EndReason::SetupFailed { reason }
                };
                self.channel_up = false;
                self.finish(reason, now);
            }
            Input::Control(msg) => self.on_control(msg, now),
        }
    }

    /// Applies a user action.
    pub fn user(&mut self, action: UserAction, now: Instant) -> Result<(), ActionError> {
        match (action, self.state) {
            (_, CallState::Ended | CallState::Ending) => Err(ActionError("the call is already ending")),
            (UserAction::Answer, CallState::Ringing) if self.role == Role::Callee => {
                self.answered_at = Some(now);
                if self.channel_up {
                    self.send(ControlMessage::Accept, now);
                    self.set_state(CallState::Active, now);
                } else {
                    self.pending = Some(ControlMessage::Accept);
                    self.set_state(CallState::Connecting, now);
                }
                Ok(())
            }
            (UserAction::Answer, _) => Err(ActionError("there is no ringing call to answer")),
            (UserAction::Reject, CallState::Ringing) if self.role == Role::Callee => {
                self.end(EndReason::Rejected { by_peer: false }, Some(ControlMessage::Reject), now);
                Ok(())
            }
            (UserAction::Reject, _) => Err(ActionError("there is no ringing call to decline")),
            (UserAction::Hangup, state) => {
                let reason = if state == CallState::Active {
                    EndReason::HungUp { by_peer: false }
                } else {
                    EndReason::Cancelled { by_peer: false }
                };
                self.end(reason, Some(ControlMessage::Hangup), now);
                Ok(())
            }
            (UserAction::Media { muted, video }, _) => {
                self.video = video;
                if self.channel_up {
                    self.send(ControlMessage::MediaState { muted, video }, now);
                }
                Ok(())
            }
        }
    }

    fn on_channel_up(&mut self, sas: Sas, now: Instant) {
        if self.channel_up {
            return;
        }
        self.channel_up = true;
        self.sas = Some(sas);
        self.last_received = now;
        self.outputs.push_back(Output::Event(CallEvent::SasReady(sas)));
        match (self.state, self.pending.take()) {
            (CallState::Connecting, Some(msg)) => {
                self.send(msg, now);
                self.set_state(CallState::Active, now);
            }
            (CallState::Ending, Some(msg)) => {
                self.send(msg, now);
                self.linger_until = Some(now + self.timeouts.linger);
            }
            (_, pending) => self.pending = pending,
        }
    }

    fn on_control(&mut self, msg: ControlMessage, now: Instant) {
        self.last_received = now;
        match msg {
            ControlMessage::Accept if self.role == Role::Caller && self.state == CallState::Ringing => {
                self.answered_at = Some(now);
                self.set_state(CallState::Active, now);
            }
            ControlMessage::Reject if self.state == CallState::Ringing => {
                self.send(ControlMessage::HangupAck, now);
                self.finish(EndReason::Rejected { by_peer: true }, now);
            }
            ControlMessage::Hangup => {
                self.send(ControlMessage::HangupAck, now);
                let reason = match self.state {
                    CallState::Active => EndReason::HungUp { by_peer: true },
                    CallState::Ending => self.end_reason.clone().unwrap_or(EndReason::HungUp { by_peer: true }),
                    // A callee only hangs up a ringing call when its ring timer runs out.
                    _ if self.role == Role::Caller => EndReason::NoAnswer,
                    _ => EndReason::Cancelled { by_peer: true },
                };
                self.finish(reason, now);
            }
            ControlMessage::HangupAck if self.state == CallState::Ending => {
                let reason = self.end_reason.clone().unwrap_or(EndReason::HungUp { by_peer: false });
                self.finish(reason, now);
            }
            ControlMessage::Ping => self.send(ControlMessage::Pong, now),
            ControlMessage::MediaState { muted, video } => {
                self.outputs.push_back(Output::Event(CallEvent::RemoteMedia { muted, video }));
            }
            // Out of place (an accept from the callee side, a late ack): ignored, never fatal. A
            // keyframe request or a bandwidth pause is media's (the node hands it to the video, not
            // to the call).
            _ => {}
        }
    }

    fn send(&mut self, msg: ControlMessage, now: Instant) {
        self.last_sent = now;
        self.outputs.push_back(Output::Send(msg));
    }

    fn set_state(&mut self, state: CallState, now: Instant) {
        if self.state != state {
            self.state = state;
            self.state_since = now;
            self.outputs.push_back(Output::Event(CallEvent::State(state)));
        }
    }

    /// Ends the call, telling the peer with `notify` first when there is (or soon will be) a channel.
    fn end(&mut self, reason: EndReason, notify: Option<ControlMessage>, now: Instant) {
        match notify {
            Some(msg) if self.channel_up => {
                self.send(msg, now);
                self.end_reason = Some(reason);
                self.linger_until = Some(now + self.timeouts.linger);
                self.set_state(CallState::Ending, now);
            }
            Some(msg) if self.channel_requested => {
                // The channel is being set up: say it as soon as it is up, within the setup time.
                self.pending = Some(msg);
                self.end_reason = Some(reason);
                self.linger_until = Some(now + self.timeouts.setup);
                self.set_state(CallState::Ending, now);
            }
            _ => self.finish(reason, now),
        }
    }

    fn finish(&mut self, reason: EndReason, now: Instant) {
        if self.state == CallState::Ended {
            return;
        }
        self.ended_at = Some(now);
        self.end_reason = Some(reason.clone());
        self.linger_until = None;
        if self.channel_requested {
            self.outputs.push_back(Output::CloseChannel);
        }
        self.set_state(CallState::Ended, now);
        self.outputs.push_back(Output::Event(CallEvent::Ended(reason)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut CallSession) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn sas() -> Sas {
        Sas([1, 2, 3, 4])
    }

    fn ringing() -> InviteReply {
        InviteReply::Ringing { candidates: vec!["127.0.0.1:1".into()], sas_table: None, group: false, group_version: None }
    }

    /// A caller and a callee wired back to back through their control messages.
    fn pair(t0: Instant) -> (CallSession, CallSession) {
        let peer = PeerId::random();
        let mut caller = CallSession::outgoing(CallId([1; 16]), peer, false, Timeouts::default(), t0);
        let callee = CallSession::incoming(
            CallId([1; 16]),
            peer,
            false,
            vec!["127.0.0.1:2".into()],
            SasTable::V1,
            Timeouts::default(),
            t0,
        );
        caller.handle(Input::InviteReplied(ringing()), t0);
        (caller, callee)
    }

    /// A call Bob answered: both sides active, Alice's outputs drained.
    fn active_pair(t0: Instant) -> (CallSession, CallSession) {
        let (mut a, mut b) = pair(t0);
        connect(&mut a, &mut b, t0);
        b.user(UserAction::Answer, t0).unwrap();
        deliver(&mut b, &mut a, t0);
        drain(&mut a);
        (a, b)
    }

    /// Delivers every `Send` of `from` to `to`; returns the other outputs.
    fn deliver(from: &mut CallSession, to: &mut CallSession, now: Instant) -> Vec<Output> {
        let mut rest = Vec::new();
        for o in drain(from) {
            match o {
                Output::Send(m) => to.handle(Input::Control(m), now),
                other => rest.push(other),
            }
        }
        rest
    }

    fn connect(caller: &mut CallSession, callee: &mut CallSession, now: Instant) {
        caller.handle(Input::ChannelUp(sas()), now);
        callee.handle(Input::ChannelUp(sas()), now);
    }

    #[test]
    fn answer_then_the_callee_hangs_up() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        assert_eq!((a.state(), b.state()), (CallState::Ringing, CallState::Ringing));
        let opened = drain(&mut a);
        assert!(opened.contains(&Output::OpenChannel { remote_candidates: vec!["127.0.0.1:1".into()] }));
        drain(&mut b);
        connect(&mut a, &mut b, t0);
        assert!(drain(&mut a).contains(&Output::Event(CallEvent::SasReady(sas()))));
        drain(&mut b);
        b.user(UserAction::Answer, t0).unwrap();
        deliver(&mut b, &mut a, t0);
        assert_eq!((a.state(), b.state()), (CallState::Active, CallState::Active));
        b.user(UserAction::Hangup, t0).unwrap();
        assert_eq!(b.state(), CallState::Ending);
        deliver(&mut b, &mut a, t0);
        assert_eq!(a.state(), CallState::Ended);
        assert_eq!(a.end_reason(), Some(&EndReason::HungUp { by_peer: true }));
        let a_out = deliver(&mut a, &mut b, t0);
        assert!(a_out.contains(&Output::CloseChannel));
        assert_eq!(b.state(), CallState::Ended, "the ack ends the hanging-up side at once");
        assert_eq!(b.end_reason(), Some(&EndReason::HungUp { by_peer: false }));
    }

    #[test]
    fn the_caller_hangs_up_and_the_ack_never_comes() {
        let t0 = Instant::now();
        let (mut a, _b) = active_pair(t0);
        a.user(UserAction::Hangup, t0).unwrap();
        assert_eq!(drain(&mut a).first(), Some(&Output::Send(ControlMessage::Hangup)));
        let linger = a.poll_timeout().unwrap();
        assert_eq!(linger, t0 + Timeouts::default().linger);
        a.handle_timeout(linger);
        assert_eq!(a.state(), CallState::Ended);
        assert_eq!(a.end_reason(), Some(&EndReason::HungUp { by_peer: false }));
    }

    #[test]
    fn reject_reaches_the_caller() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        connect(&mut a, &mut b, t0);
        b.user(UserAction::Reject, t0).unwrap();
        deliver(&mut b, &mut a, t0);
        assert_eq!(a.end_reason(), Some(&EndReason::Rejected { by_peer: true }));
        deliver(&mut a, &mut b, t0);
        assert_eq!(b.end_reason(), Some(&EndReason::Rejected { by_peer: false }));
    }

    #[test]
    fn a_reject_before_the_channel_is_up_is_sent_when_it_comes_up() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        b.user(UserAction::Reject, t0).unwrap();
        assert_eq!(b.state(), CallState::Ending);
        assert!(!drain(&mut b).iter().any(|o| matches!(o, Output::Send(_))));
        connect(&mut a, &mut b, t0);
        deliver(&mut b, &mut a, t0);
        assert_eq!(a.end_reason(), Some(&EndReason::Rejected { by_peer: true }));
    }

    #[test]
    fn an_early_answer_waits_in_connecting() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        b.user(UserAction::Answer, t0).unwrap();
        assert_eq!(b.state(), CallState::Connecting);
        connect(&mut a, &mut b, t0);
        assert_eq!(b.state(), CallState::Active);
        deliver(&mut b, &mut a, t0);
        assert_eq!(a.state(), CallState::Active);
    }

    #[test]
    fn busy_unavailable_and_unreachable_end_the_dialing() {
        let t0 = Instant::now();
        for (reply, reason) in [
            (Input::InviteReplied(InviteReply::Busy), EndReason::Busy),
            (
                Input::InviteReplied(InviteReply::Unavailable { reason: "no".into() }),
                EndReason::Unavailable { reason: "no".into() },
            ),
            (Input::InviteFailed("offline".into()), EndReason::Unreachable { reason: "offline".into() }),
        ] {
            let mut a = CallSession::outgoing(CallId([2; 16]), PeerId::random(), false, Timeouts::default(), t0);
            a.handle(reply, t0);
            assert_eq!(a.end_reason(), Some(&reason));
            let out = drain(&mut a);
            assert!(!out.contains(&Output::CloseChannel), "no channel was ever opened");
            assert!(out.contains(&Output::Event(CallEvent::Ended(reason))));
        }
        let mut a = CallSession::outgoing(CallId([2; 16]), PeerId::random(), false, Timeouts::default(), t0);
        let deadline = a.poll_timeout().unwrap();
        a.handle_timeout(deadline);
        assert!(matches!(a.end_reason(), Some(EndReason::Unreachable { .. })));
    }

    #[test]
    fn a_caller_looks_for_the_peer_as_long_as_it_would_ring_then_gives_the_invite_its_own_time() {
        let t0 = Instant::now();
        let t = Timeouts::default();
        let mut a = CallSession::outgoing(CallId([3; 16]), PeerId::random(), false, t, t0);
        assert_eq!(a.poll_timeout(), Some(t0 + t.ring + FIND_GRACE), "still looking: the ring time and a grace");
        a.handle_timeout(t0 + t.invite);
        assert_eq!(a.state(), CallState::Dialing, "the invite time alone does not end a lookup");
        let found = t0 + Duration::from_secs(30);
        a.peer_found(found);
        assert_eq!(a.poll_timeout(), Some(found + t.invite), "found: the invite has its own time from then");
        a.peer_found(found + Duration::from_secs(5));
        assert_eq!(a.poll_timeout(), Some(found + t.invite), "found once");
        a.handle_timeout(found + t.invite);
        assert!(matches!(a.end_reason(), Some(EndReason::Unreachable { .. })));
    }

    #[test]
    fn the_ring_timeout_ends_both_sides_as_no_answer() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        connect(&mut a, &mut b, t0);
        let ring_end = t0 + Timeouts::default().ring;
        assert_eq!(b.poll_timeout(), Some(ring_end));
        b.handle_timeout(ring_end);
        deliver(&mut b, &mut a, ring_end);
        assert_eq!(a.end_reason(), Some(&EndReason::NoAnswer));
        deliver(&mut a, &mut b, ring_end);
        assert_eq!(b.end_reason(), Some(&EndReason::NoAnswer));
    }

    #[test]
    fn a_channel_that_never_comes_up_fails_the_setup() {
        let t0 = Instant::now();
        let (mut a, _b) = pair(t0);
        let deadline = a.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + Timeouts::default().setup);
        a.handle_timeout(deadline);
        assert!(matches!(a.end_reason(), Some(EndReason::SetupFailed { .. })));
    }

    #[test]
    fn a_security_failure_says_so() {
        let t0 = Instant::now();
        let (mut a, _b) = pair(t0);
        a.handle(Input::ChannelFailed { security: true, reason: "the peer is not bob".into() }, t0);
        assert_eq!(a.end_reason(), Some(&EndReason::Security { reason: "the peer is not bob".into() }));
        assert!(a.end_reason().unwrap().describe().starts_with("SECURITY"));
    }

    #[test]
    fn keepalives_flow_and_silence_loses_the_connection() {
        let t0 = Instant::now();
        let (mut a, mut b) = active_pair(t0);
        let t = Timeouts::default();
        a.handle_timeout(t0 + t.keepalive);
        assert_eq!(drain(&mut a), vec![Output::Send(ControlMessage::Ping)]);
        b.handle(Input::Control(ControlMessage::Ping), t0 + t.keepalive);
        assert!(drain(&mut b).contains(&Output::Send(ControlMessage::Pong)));
        a.handle_timeout(t0 + t.idle);
        assert_eq!(a.end_reason(), Some(&EndReason::ConnectionLost));
    }

    #[test]
    fn a_keyframe_request_is_not_the_calls_business() {
        let t0 = Instant::now();
        let (mut a, _b) = active_pair(t0);
        assert_eq!(a.state(), CallState::Active);
        // The node hands keyframe requests to the video; one that reaches the session anyway
        // changes nothing and says nothing.
        a.handle(Input::Control(ControlMessage::KeyframeRequest), t0);
        assert_eq!(drain(&mut a), vec![]);
        assert_eq!(a.state(), CallState::Active);
    }

    #[test]
    fn media_state_travels_and_wrong_actions_are_refused() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        assert!(a.user(UserAction::Answer, t0).is_err(), "the caller cannot answer");
        connect(&mut a, &mut b, t0);
        b.user(UserAction::Answer, t0).unwrap();
        deliver(&mut b, &mut a, t0);
        assert!(b.user(UserAction::Reject, t0).is_err(), "too late to decline");
        a.user(UserAction::Media { muted: true, video: false }, t0).unwrap();
        deliver(&mut a, &mut b, t0);
        assert!(drain(&mut b).contains(&Output::Event(CallEvent::RemoteMedia { muted: true, video: false })));
        // Messages out of place are ignored.
        a.handle(Input::Control(ControlMessage::Accept), t0);
        a.handle(Input::Control(ControlMessage::HangupAck), t0);
        assert_eq!(a.state(), CallState::Active);
    }

    /// Sides whose newest tables are `caller_newest` and `callee_newest` meet through the invite and
    /// the `ringing` reply, as the node wires them.
    fn negotiate(caller_newest: SasTable, callee_newest: SasTable, t0: Instant) -> (CallSession, CallSession) {
        let id = CallId([3; 16]);
        let mut caller = CallSession::outgoing(id, PeerId::random(), false, Timeouts::default(), t0)
            .with_newest_sas_table(caller_newest);
        let invite = caller.invite(vec!["127.0.0.1:1".into()]);
        // What the callee's node does: validate, pick, ring, reply.
        let invite: Invite = serde_json::from_value(serde_json::to_value(&invite).unwrap()).unwrap();
        invite.validate().unwrap();
        let picked = callee_newest.pick(invite.offered_sas_tables()).unwrap();
        let callee =
            CallSession::incoming(id, PeerId::random(), false, invite.candidates, picked, Timeouts::default(), t0);
        let reply = InviteReply::ringing(vec!["127.0.0.1:2".into()], callee.sas_table());
        let reply: InviteReply = serde_json::from_value(serde_json::to_value(&reply).unwrap()).unwrap();
        caller.handle(Input::InviteReplied(reply), t0);
        (caller, callee)
    }

    #[test]
    fn the_sas_table_is_the_newest_both_sides_have() {
        let t0 = Instant::now();
        for caller_newest in SasTable::ALL {
            for callee_newest in SasTable::ALL {
                let (caller, callee) = negotiate(caller_newest, callee_newest, t0);
                let expected = caller_newest.min(callee_newest);
                assert_eq!(caller.state(), CallState::Ringing);
                assert_eq!((caller.sas_table(), callee.sas_table()), (expected, expected));
                let sas = Sas([9, 99, 199, 255]);
                assert_eq!(sas.text_in(caller.sas_table()), sas.text_in(callee.sas_table()));
            }
        }
        assert_eq!(negotiate(SasTable::LATEST, SasTable::LATEST, t0).0.sas_table(), SasTable::V2);
    }

    #[test]
    fn an_older_callee_that_names_no_table_means_v1() {
        let t0 = Instant::now();
        let mut caller = CallSession::outgoing(CallId([4; 16]), PeerId::random(), false, Timeouts::default(), t0);
        assert_eq!(caller.invite(vec![]).sas_tables, Some(vec![1, 2]));
        caller.handle(Input::InviteReplied(ringing()), t0);
        assert_eq!((caller.state(), caller.sas_table()), (CallState::Ringing, SasTable::V1));
    }

    #[test]
    fn a_callee_that_picks_a_table_we_did_not_offer_ends_the_call() {
        let t0 = Instant::now();
        for (newest, named) in [(SasTable::V1, 2), (SasTable::V2, 3), (SasTable::V2, 0)] {
            let mut caller = CallSession::outgoing(CallId([5; 16]), PeerId::random(), false, Timeouts::default(), t0)
                .with_newest_sas_table(newest);
            let reply = InviteReply::Ringing { candidates: vec!["127.0.0.1:1".into()], sas_table: Some(named), group: false, group_version: None };
            caller.handle(Input::InviteReplied(reply), t0);
            assert_eq!(caller.state(), CallState::Ended, "table {named} offered up to {newest:?}");
            assert!(matches!(caller.end_reason(), Some(EndReason::SetupFailed { .. })));
            assert!(!drain(&mut caller).iter().any(|o| matches!(o, Output::OpenChannel { .. })));
        }
    }
}
