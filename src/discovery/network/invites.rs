//! The invite protocol (`/hail/invite/1`) on the shared swarm: invites and replies cross it as JSON
//! values the call layer reads.

use super::*;

/// Invite traffic (`/hail/invite/1`): the swarm is shared by discovery and call signalling.
#[derive(Debug)]
pub enum InviteEvent {
    /// Someone invites us to a call; answer through [`Discovery::reply_invite`].
    Received {
        /// Who (authenticated by the libp2p connection).
        peer: PeerId,
        /// The IP of the peer's direct connection (`None` through a relay circuit): unknown
        /// callers' invites are budgeted per IP.
        remote_ip: Option<std::net::IpAddr>,
        /// The invite, as the JSON it came in (the call layer reads it; dropping `channel`
        /// unanswered closes the stream).
        invite: serde_json::Value,
        /// Where the reply goes.
        channel: ResponseChannel<serde_json::Value>,
    },
    /// The callee answered our invite.
    Replied {
        /// Which invite.
        request: OutboundRequestId,
        /// The answer, as the JSON it came in.
        reply: serde_json::Value,
    },
    /// Our invite could not be delivered or answered.
    Failed {
        /// Which invite.
        request: OutboundRequestId,
        /// Why.
        reason: String,
    },
}

impl Discovery {
    pub(super) fn on_invite(&mut self, event: request_response::Event<serde_json::Value, serde_json::Value>) {
        use request_response::{Event, Message};
        let out = match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                let remote_ip = self.peer_ips.get(&peer);
                InviteEvent::Received { peer, remote_ip, invite: request, channel }
            }
            Event::Message { message: Message::Response { request_id, response }, .. } => {
                InviteEvent::Replied { request: request_id, reply: response }
            }
            Event::OutboundFailure { request_id, error, .. } => {
                InviteEvent::Failed { request: request_id, reason: one_line(&error.to_string()) }
            }
            Event::InboundFailure { peer, error, .. } => {
                // A malformed or oversized invite ends up here: logged, nothing else happens.
                tracing::info!(%peer, %error, "refused an invite that could not be read");
                return;
            }
            Event::ResponseSent { .. } => return,
        };
        self.events.push(DiscoveryEvent::Invite(out));
    }

    /// Sends an invite to `peer` (over the connection a lookup made, or a new one).
    pub fn send_invite(&mut self, peer: PeerId, invite: serde_json::Value) -> OutboundRequestId {
        self.swarm.behaviour_mut().invite.send_request(&peer, invite)
    }

    /// Answers an invite.
    pub fn reply_invite(&mut self, channel: ResponseChannel<serde_json::Value>, reply: serde_json::Value) {
        if self.swarm.behaviour_mut().invite.send_response(channel, reply).is_err() {
            tracing::debug!("the caller left before the invite was answered");
        }
    }
}
