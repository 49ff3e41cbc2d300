//! A bare libp2p peer that speaks only `/hail/invite/1`: it sends invites as JSON and reads the
//! replies, with a throw-away identity (a stranger, or a hostile peer).
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{PeerId, StreamProtocol, Swarm, noise, tcp, yamux};
use serde_json::Value;

#[derive(NetworkBehaviour)]
pub struct Hostile {
    pub invite: request_response::json::Behaviour<Value, Value>,
}

pub fn hostile_node() -> Swarm<Hostile> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| Hostile {
            invite: request_response::json::Behaviour::new(
                [(StreamProtocol::new("/hail/invite/1"), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            ),
        })
        .unwrap()
        .build()
}

/// Sends `request` as an invite; returns the reply, or the failure as text.
pub async fn invite(swarm: &mut Swarm<Hostile>, peer: PeerId, request: Value) -> Result<Value, String> {
    let id = swarm.behaviour_mut().invite.send_request(&peer, request);
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(HostileEvent::Invite(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                })) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(HostileEvent::Invite(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                })) if request_id == id => return Err(error.to_string()),
                _ => {}
            }
        }
    })
    .await
    .expect("an answer or a failure within 15 s")
}

