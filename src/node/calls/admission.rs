//! Who may ring: an invite is read, checked against the contacts, the blocked list and the
//! invite budgets (`call::rate_limit`), and answered; refused calls leave coalesced history.

use super::*;

/// The node loop's call handling. Every method runs on the loop; none blocks.
impl<S: crate::store::Store> crate::node::NodeLoop<S> {
    /// An invite from the swarm, or the answer to ours.
    pub(in crate::node) fn on_invite(&mut self, event: InviteEvent) {
        match event {
            InviteEvent::Received { peer, remote_ip, invite, channel } => match serde_json::from_value(invite) {
                Ok(invite) => self.on_incoming_invite(peer, remote_ip, invite, channel),
                // JSON that is not an invite: the channel is dropped unanswered, which closes the
                // stream (as libp2p's codec did when the invite was typed there).
                Err(e) => tracing::info!(%peer, error = %e, "refused an invite that could not be read"),
            },
            InviteEvent::Replied { request, reply } => match serde_json::from_value(reply) {
                Ok(reply) => {
                    self.join_callees_relay(request, &reply);
                    self.feed_if(Some(request), Input::InviteReplied(reply))
                }
                Err(e) => self.feed_if(Some(request), Input::InviteFailed(format!("unreadable answer: {e}"))),
            },
            InviteEvent::Failed { request, reason } => self.feed_if(Some(request), Input::InviteFailed(reason)),
        }
    }

    /// The answer to our invite names a media relay allocation the callee made for us (it has a
    /// relay and we brought none): we join it, as a callee joins ours.
    fn join_callees_relay(&mut self, request: OutboundRequestId, reply: &InviteReply) {
        let InviteReply::Ringing { candidates, .. } = reply else { return };
        let Some((relay, _)) = candidates.iter().find_map(|c| crate::transport::candidate::parse_relay(c)) else {
            return;
        };
        let Some(call) = self.phone.calls.values().find(|c| c.invite_request == Some(request)) else { return };
        if call.invite_request != Some(request) || call.session.state() != CallState::Dialing || call.relay_owned.is_some()
        {
            return;
        }
        let call_id = call.session.id();
        self.ask_relay(call_id, relay, crate::relay::RelayRequest::Join { call_id }, false);
    }

    pub(super) fn feed_if(&mut self, request: Option<OutboundRequestId>, input: Input) {
        let Some(call) = self.phone.calls.values_mut().find(|c| request.is_none() || c.invite_request == request) else {
            return;
        };
        // A group leg to a hail that predates group calls rang as a 1:1 call: end the leg.
        let input = match input {
            Input::InviteReplied(InviteReply::Ringing { group: false, .. }) if call.group.is_some() => {
                let who = call.contact.as_ref().map(|c| c.name.to_string()).unwrap_or_else(|| call.session.peer().to_base58());
                Input::InviteFailed(format!("{who}'s hail does not take group calls (it needs an update)"))
            }
            // One that speaks another group protocol cannot be in the same group.
            Input::InviteReplied(InviteReply::Ringing { group: true, group_version, .. })
                if call.group.is_some() && group_version.unwrap_or(1) != signal::GROUP_VERSION =>
            {
                let who = call.contact.as_ref().map(|c| c.name.to_string()).unwrap_or_else(|| call.session.peer().to_base58());
                Input::InviteFailed(format!(
                    "{who}'s hail takes group calls of version {}, this one {}: both need the same hail release",
                    group_version.unwrap_or(1),
                    signal::GROUP_VERSION
                ))
            }
            other => other,
        };
        call.session.handle(input, Instant::now());
        self.drive_call();
    }

    /// An invite from `peer`. Who is calling is decided first (a blocked caller, or an unknown one
    /// when unknown callers are refused, is turned away before any budget is spent); then contacts
    /// and unknown callers draw on separate budgets (`call::rate_limit`), so throw-away PeerIds
    /// cannot lock contacts out.
    pub(super) fn on_incoming_invite(
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
        if let Some(leg) = invite.group.as_ref().filter(|g| g.version != signal::GROUP_VERSION) {
            // Members of one group must speak one group protocol: refused before it rings.
            tracing::info!(%peer, version = leg.version, "refused a group call of another protocol version");
            let reason = format!(
                "this hail takes group calls of version {}, the invitation is of version {}: both need the same hail release",
                signal::GROUP_VERSION,
                leg.version
            );
            self.discovery.reply_invite(channel, reply_json(refuse(&reason)));
            if leg.kind == signal::GroupLegKind::Join {
                self.record_refused(peer, contact, &invite, now);
            }
            return;
        }
        if invite.group.as_ref().is_some_and(|g| g.kind == signal::GroupLegKind::Mesh) {
            return self.on_mesh_invite(peer, contact, invite, channel);
        }
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
        if self.phone.in_call() {
            self.discovery.reply_invite(channel, reply_json(InviteReply::Busy));
            return;
        }
        self.take_call(peer, contact, invite, channel, false);
    }

    /// Takes an invite that passed admission: it rings (and is answered at once with
    /// `answer_now`, a mesh leg, or with auto-answer for a contact).
    pub(super) fn take_call(
        &mut self,
        peer: PeerId,
        contact: Option<Contact>,
        invite: Invite,
        channel: ResponseChannel<serde_json::Value>,
        answer_now: bool,
    ) {
        let now = Instant::now();
        let refuse = |reason: &str| InviteReply::Unavailable { reason: reason.into() };
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
        let auto_answer = answer_now || (self.phone.settings.auto_answer && contact.is_some());
        let mut call =
            LiveCall::new(
                session,
                contact,
                self.phone.settings.audio.clone(),
                self.phone.settings.video.clone(),
                self.phone.view.clone(),
            );
        call.group = invite.group.clone();
        if let Some(leg) = &invite.group {
            let me = self.config.identity.peer_id();
            let others = leg.member_ids().unwrap_or_default().into_iter().filter(|p| *p != peer && *p != me);
            let with = others
                .map(|p| match self.db.contact_by_peer(&p) {
                    Ok(Some(c)) => c.name.to_string(),
                    _ => p.to_base58(),
                })
                .collect();
            call.group_ring = Some(view::GroupRing { call_id: leg.id, with });
        }
        let mut reply = InviteReply::ringing(candidates, invite.sas_table());
        if let InviteReply::Ringing { group, group_version, .. } = &mut reply {
            *group = invite.group.is_some();
            *group_version = invite.group.is_some().then_some(signal::GROUP_VERSION);
        }
        let callers_relay = invite.candidates.iter().find_map(|c| crate::transport::candidate::parse_relay(c));
        // Behind NAT with a media relay, called by someone who brought none: we allocate, and the
        // reply carries the caller's side (it answers once the relay has, within 3 s).
        let our_relay = match callers_relay {
            Some(_) => None,
            None => self.discovery.media_relay_peer().filter(|_| self.discovery.behind_nat()),
        };
        match our_relay {
            Some(_) => call.pending_invite_reply = Some((channel, reply)),
            None => self.discovery.reply_invite(channel, reply_json(reply)),
        }
        self.phone.calls.insert(call.session.id(), call);
        if let Some((relay, _)) = callers_relay {
            let request = crate::relay::RelayRequest::Join { call_id: invite.call_id };
            self.ask_relay(invite.call_id, relay, request, false);
        }
        if let Some(relay) = our_relay {
            let request = crate::relay::RelayRequest::Allocate { call_id: invite.call_id, peer: peer.to_string() };
            self.ask_relay(invite.call_id, relay, request, true);
        }
        if let Some(call) = self.phone.calls.get(&invite.call_id).filter(|_| !answer_now) {
            let info = call.info(call.link(&self.phone.links));
            self.emit(NodeEvent::CallIncoming { call: info });
        }
        if let Some(call) = self.phone.calls.get_mut(&invite.call_id).filter(|_| auto_answer) {
            let _ = call.session.user(UserAction::Answer, now);
        }
        self.drive_call();
    }

    /// Records a call refused without ringing, unless [`RefusedLog`] coalesces it.
    pub(super) fn record_refused(&mut self, peer: PeerId, contact: Option<Contact>, invite: &Invite, at: Instant) {
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
            group: None,
        };
        if let Err(e) = self.db.record_call(&record) {
            tracing::warn!(error = %e, "cannot record a refused call");
        }
    }
}

/// An invite as discovery carries it. Plain data (strings and numbers) always has a JSON form.
pub(super) fn invite_json(invite: &Invite) -> serde_json::Value {
    serde_json::to_value(invite).expect("an invite is plain data")
}

/// An invite reply as discovery carries it.
pub(super) fn reply_json(reply: InviteReply) -> serde_json::Value {
    serde_json::to_value(reply).expect("an invite reply is plain data")
}
