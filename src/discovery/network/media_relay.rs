//! The media relay protocol (`/hail/media-relay/1`) on the shared swarm: our requests to a relay,
//! and, on a public node, the allocations we serve.

use super::*;

/// Where a media relay answer goes.
pub type RelayReply = oneshot::Sender<Result<crate::relay::RelayResponse, RelayRequestError>>;

/// Why a media relay request got no answer from the relay.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayRequestError {
    /// Our own cap on requests in flight.
    #[error("too many relay requests in flight")]
    TooManyInFlight,
    /// The request could not be delivered or answered (the failure, on one line).
    #[error("the relay did not answer: {0}")]
    NoAnswer(String),
    /// The node dropped the request (it is stopping).
    #[error("the relay request was dropped")]
    Dropped,
    /// No answer in time.
    #[error("the relay did not answer in time")]
    TimedOut,
}

impl Discovery {
    /// Sends a media relay request to `relay`; the answer (or why there is none) goes to `reply`.
    pub fn relay_request(&mut self, relay: PeerId, request: crate::relay::RelayRequest, reply: RelayReply) {
        if self.relay_requests.len() >= 64 {
            let _ = reply.send(Err(RelayRequestError::TooManyInFlight));
            return;
        }
        let id = self.swarm.behaviour_mut().media_relay.send_request(&relay, request);
        self.relay_requests.insert(id, reply);
    }

    /// The media relay service's counters, on a node that runs it.
    pub fn media_relay_stats(&mut self) -> Option<crate::relay::RelayStats> {
        self.media_relay.as_mut().map(crate::relay::MediaRelay::stats)
    }

    pub(super) fn on_media_relay(
        &mut self,
        event: request_response::Event<crate::relay::RelayRequest, crate::relay::RelayResponse>,
    ) {
        use crate::relay::{MediaRelay, RelayLimits, RelayResponse};
        match event {
            request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            } => {
                // Only a node that relays, with a public call endpoint, serves media.
                let serving = self.nat.serving || self.config.relay == RelayMode::On;
                let response = match (serving, self.calls_address) {
                    (true, Some(calls)) => {
                        let relay =
                            self.media_relay.get_or_insert_with(|| MediaRelay::new(calls.ip(), RelayLimits::default()));
                        let from_ip = self.peer_ips.get(&peer);
                        relay.handle(peer, from_ip, request)
                    }
                    _ => RelayResponse::Err { reason: "this node does not relay media".into() },
                };
                let _ = self.swarm.behaviour_mut().media_relay.send_response(channel, response);
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, response },
                ..
            } => {
                if let Some(reply) = self.relay_requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.relay_requests.remove(&request_id) {
                    let _ = reply.send(Err(RelayRequestError::NoAnswer(one_line(&error.to_string()))));
                }
            }
            _ => {}
        }
    }
}
