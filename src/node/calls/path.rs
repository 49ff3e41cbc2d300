//! The call's network path: the invite with our candidates, media relay requests, and the
//! secure channel's setup over the QUIC endpoint.

use super::*;

/// The node loop's call handling. Every method runs on the loop; none blocks.
impl<S: crate::store::Store> crate::node::NodeLoop<S> {
    /// Sends the invite for the dialing call, with our candidates and `extra` ones (a relay's).
    pub(super) fn send_invite(&mut self, call_id: CallId, extra: Vec<String>) {
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

    pub(super) fn open_channel(&mut self, remote_candidates: Vec<String>) {
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
