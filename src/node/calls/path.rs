//! The call's network path: the invite with our candidates, media relay requests, and the call's
//! [`PeerLink`] (opened when the session asks for the channel, fed the streams the peer's connections
//! bring, and heard from through [`PhoneEvent::Link`]).

use super::*;

/// The node loop's call handling. Every method runs on the loop; none blocks.
impl<S: crate::store::Store> crate::node::NodeLoop<S> {
    /// Sends the invite for the dialing call, with our candidates and `extra` ones (a relay's).
    pub(super) fn send_invite(&mut self, call_id: CallId, extra: Vec<String>) {
        let mut candidates = self.phone.candidates(&self.discovery.host_ips());
        let Some(call) = self.phone.calls.get_mut(&call_id) else { return };
        candidates.truncate(signal::MAX_CANDIDATES - extra.len().min(signal::MAX_CANDIDATES));
        candidates.extend(extra);
        let mut invite = call.session.invite(candidates);
        invite.group = call.group.clone();
        let request = self.discovery.send_invite(call.session.peer(), invite_json(&invite));
        call.invite_request = Some(request);
    }

    /// Asks a media relay for an allocation (`allocate`, we call) or to join one (we are called);
    /// the answer comes back as [`PhoneEvent::Relay`] (within 3 s).
    pub(super) fn ask_relay(
        &mut self,
        call_id: CallId,
        relay: PeerId,
        request: crate::relay::RelayRequest,
        allocate: bool,
    ) {
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

    /// Opens the call's link to its peer: the driver races the peer's candidates and the inbox's
    /// streams for the one handshake, within the setup timeout (+1 s), and reports to the loop.
    pub(super) fn open_channel(&mut self, call_id: CallId, remote_candidates: Vec<String>) {
        let Some(call) = self.phone.calls.get_mut(&call_id) else { return };
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
        let setup = LinkSetup {
            endpoint: self.phone.endpoint.clone(),
            role: call.session.role().into(),
            call_id: call.session.id(),
            candidates,
            params,
            time_limit: self.phone.settings.timeouts.setup + Duration::from_secs(1),
        };
        let inbox = call.inbox.take().unwrap_or_default();
        let wrap: fn(CallId, LinkEvent) -> PhoneEvent = |call_id, event| PhoneEvent::Link { call_id, event };
        let (link, driver) = PeerLink::connect(setup, inbox, self.phone.events.clone(), wrap);
        // The driver ends by itself: when the setup fails, or once the link is closed (at once
        // during setup, within two seconds once up), so its handle is not kept.
        drop(tokio::spawn(driver));
        if let Some(old) = self.phone.links.insert(call.session.peer(), link) {
            old.close();
        }
    }

    /// What the call's link reported.
    pub(super) fn on_link_event(&mut self, call_id: CallId, event: LinkEvent, now: Instant) {
        // A link of an earlier call (its driver lingers while it closes) is not this call's.
        let Some(call) = self.phone.calls.get_mut(&call_id) else { return };
        match event {
            LinkEvent::Up(established) => {
                let Established { sas, frame_keys, handshake_hash, .. } = *established;
                call.frame_keys = Some(frame_keys);
                call.handshake_hash = handshake_hash.as_slice().try_into().ok();
                call.session.handle(Input::ChannelUp(sas), now);
            }
            LinkEvent::Failed(e) => {
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
            LinkEvent::Control(body) => match ControlMessage::decode(&body) {
                // Media's own message rides the control stream but is not the call's business:
                // straight to the media (issue 12: it no longer passes through CallSession).
                Ok(ControlMessage::KeyframeRequest) => {
                    if call.group.is_some() {
                        // On a group leg: the member wants a keyframe of our group video.
                        self.on_leg_keyframe_request(call_id);
                    } else if let (CallState::Active, Some(media)) = (call.session.state(), &call.media) {
                        media.keyframe_requested();
                    }
                }
                // Also the media's: the peer's video pauses for bandwidth or sends again. A group
                // leg has no such pause (its video is not rate-controlled per leg): ignored there.
                Ok(ControlMessage::BandwidthPause { paused }) => {
                    if let (None, CallState::Active, Some(media)) = (&call.group, call.session.state(), &call.media) {
                        media.set_remote_bandwidth_pause(paused);
                    }
                }
                Ok(msg @ ControlMessage::Group { .. }) => return self.on_group_frame(call_id, &msg),
                Ok(msg) => call.session.handle(Input::Control(msg), now),
                // A malformed message from an authenticated peer: note it, keep the call.
                Err(e) => tracing::warn!(error = %e, "ignored a malformed control message"),
            },
            LinkEvent::Closed(e) => {
                call.session.handle(Input::ChannelFailed { security: false, reason: e.to_string() }, now)
            }
        }
        self.drive_call();
    }
}

/// The node's links, one per remote peer.
pub(super) type Links = HashMap<PeerId, PeerLink>;

impl LiveCall {
    /// This call's link: the one to its peer, set up for this call.
    pub(super) fn link<'a>(&self, links: &'a Links) -> Option<&'a PeerLink> {
        links.get(&self.session.peer()).filter(|l| l.call_id() == self.session.id())
    }

    /// Where the peer's streams and our relay addresses go: the call's link, or its inbox until
    /// the link connects.
    pub(super) fn setup_feed<'a>(&'a self, links: &'a Links) -> Option<&'a SetupFeed> {
        self.link(links).map(PeerLink::setup_feed).or_else(|| self.inbox.as_ref().map(LinkInbox::setup_feed))
    }

    /// Takes this call's link out of `links`.
    pub(super) fn take_link(&self, links: &mut Links) -> Option<PeerLink> {
        self.link(links)?;
        links.remove(&self.session.peer())
    }
}

impl Phone {
    /// A stream from a connection the peer opened, for the live call's link (or its inbox until
    /// the link connects); refused when it names no live call.
    pub(super) fn offer_stream(&self, call_id: CallId, stream: CallStream) {
        let call = self.calls.get(&call_id);
        match call.and_then(|c| c.setup_feed(&self.links)) {
            Some(feed) => feed.offer_stream(stream),
            None => stream.conn.close(channel::CLOSE_UNWANTED.into(), b"no such call"),
        }
    }
}
