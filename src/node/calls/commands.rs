//! What the user asks of the call: place, answer, mute, video, hang up, confirm the emoji.

use super::*;

/// The node loop's call handling. Every method runs on the loop; none blocks.
impl<S: crate::store::Store> crate::node::NodeLoop<S> {
    /// `hail call WHO`: starts a call; the reply comes when it rings or fails.
    pub(in crate::node) fn place_call(
        &mut self,
        who: String,
        video: bool,
        audio: MediaOverride,
        reply: Reply<CallInfo>,
    ) {
        if self.phone.in_call() {
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
        self.dial(peer, contact, video, audio, None, Some(reply));
        self.drive_call();
    }

    /// Starts a call (or a group leg, with `group`) to `peer`: it looks for the peer, then sends
    /// the invite; `reply`, if any, is answered once it rings or fails.
    pub(in crate::node) fn dial(
        &mut self,
        peer: PeerId,
        contact: Option<Contact>,
        video: bool,
        audio: MediaOverride,
        group: Option<GroupLeg>,
        reply: Option<Reply<CallInfo>>,
    ) -> CallId {
        let now = Instant::now();
        let call_id = CallId::random();
        let session = CallSession::outgoing(call_id, peer, video, self.phone.settings.timeouts, now);
        let mut call = LiveCall::new(
            session,
            contact,
            audio.apply(&self.phone.settings.audio),
            audio.apply_video(&self.phone.settings.video),
            self.phone.view.clone(),
        );
        call.pending_reply = reply;
        call.group = group;
        self.phone.calls.insert(call.session.id(), call);
        // Find the peer first (LAN, known addresses, DHT); the invite goes over that connection.
        let (tx, rx) = oneshot::channel();
        // With a DHT, as long as the call would ring: a peer that has just started is found once
        // its record is out. Without one only known addresses can answer: the usual find time.
        let ring = self.phone.settings.timeouts.ring;
        let patience = if self.discovery.has_dht() { ring } else { ring.min(crate::discovery::network::FIND_TIMEOUT) };
        self.discovery.find_within(peer, now, patience, tx);
        let events = self.phone.events.clone();
        tokio::spawn(async move {
            let result = rx.await.unwrap_or(Err(FindError::Busy));
            let _ = events.send(PhoneEvent::Found { call_id, result }).await;
        });
        call_id
    }

    /// The call the user's call commands act on ([`Phone::primary`]).
    fn primary_mut(&mut self) -> Result<&mut LiveCall, NodeError> {
        let id = self.phone.primary().ok_or(NodeError::NoCall)?;
        self.phone.calls.get_mut(&id).ok_or(NodeError::NoCall)
    }

    /// A contact name or a PeerId → the peer and its contact entry.
    pub(in crate::node) fn resolve_who(&self, who: &str) -> Result<(PeerId, Option<Contact>), NodeError> {
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
    pub(in crate::node) fn answer(&mut self, audio: MediaOverride) -> Result<CallInfo, NodeError> {
        let call = self.primary_mut()?;
        call.audio_config = audio.apply(&call.audio_config);
        call.video_config = audio.apply_video(&call.video_config);
        self.call_action(UserAction::Answer)
    }

    /// `mute` / `unmute`: the 1:1 call's (or a ringing group invitation's), else the group
    /// call's.
    pub(in crate::node) fn set_muted(&mut self, muted: bool) -> Result<crate::node::CallOrGroup, NodeError> {
        if self.phone.primary().is_none() && self.phone.in_group() {
            return self.set_group_muted(muted).map(|g| crate::node::CallOrGroup::Group(Box::new(g)));
        }
        self.set_call_muted(muted).map(|c| crate::node::CallOrGroup::Call(Box::new(c)))
    }

    fn set_call_muted(&mut self, muted: bool) -> Result<CallInfo, NodeError> {
        let call = self.primary_mut()?;
        call.muted = muted;
        if let Some(media) = &call.media {
            media.set_muted(muted);
        }
        let video = call.session.video();
        self.call_action(UserAction::Media { muted, video })
    }

    /// `video on|off`: the 1:1 call's (or a ringing group invitation's), else the group call's.
    pub(in crate::node) fn set_video(&mut self, on: bool) -> Result<crate::node::CallOrGroup, NodeError> {
        if self.phone.primary().is_none() && self.phone.in_group() {
            return self.set_group_video(on).map(|g| crate::node::CallOrGroup::Group(Box::new(g)));
        }
        self.set_call_video(on).map(|c| crate::node::CallOrGroup::Call(Box::new(c)))
    }

    /// `video on|off` in a 1:1 call: our video; the peer is told (before the call is answered,
    /// it only sets whether the call starts with our video).
    fn set_call_video(&mut self, on: bool) -> Result<CallInfo, NodeError> {
        let call = self.primary_mut()?;
        if let Some(media) = &call.media {
            media.set_video(on);
        }
        let muted = call.muted;
        self.call_action(UserAction::Media { muted, video: on })
    }

    /// `answer`, `reject`, `hangup`, media state.
    pub(in crate::node) fn call_action(&mut self, action: UserAction) -> Result<CallInfo, NodeError> {
        let id = self.phone.primary().ok_or(NodeError::NoCall)?;
        let call = self.phone.calls.get_mut(&id).ok_or(NodeError::NoCall)?;
        call.session.user(action, Instant::now()).map_err(|ActionError(what)| NodeError::CallAction(what))?;
        let info = call.info(call.link(&self.phone.links));
        self.drive_call();
        Ok(info)
    }

    /// `hail sas confirm CALL EMOJI`: the emoji matched; the contact becomes SAS-verified. The
    /// confirmation names the call and the emoji seen, so one typed for a call that has since
    /// ended or been replaced, or with emoji that are not this call's, verifies nothing.
    pub(in crate::node) fn confirm_sas(&mut self, call_id: &str, emoji: &str) -> Result<Contact, NodeError> {
        let Some(call) = self.phone.primary().and_then(|id| self.phone.calls.get(&id)) else {
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
        let info = call.info(call.link(&self.phone.links));
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
        let updated = self.db.update_contact(&contact.name, |c| c.verify(Verification::Sas))?;
        if let Ok(call) = self.primary_mut() {
            call.contact = Some(updated.clone());
        }
        self.emit(NodeEvent::ContactChanged { contact: updated.clone() });
        Ok(updated)
    }
}
