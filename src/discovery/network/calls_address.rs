//! Where our call endpoint is: the address we tell others (`/hail/reflector/1` answers), and what
//! public peers tell us about it.

use super::*;

impl Discovery {
    /// Our call endpoint's address, if it is public: peers behind NAT may ask us for it.
    pub fn set_calls_address(&mut self, address: Option<std::net::SocketAddr>) {
        self.calls_address = address.filter(|a| is_global_address(&Multiaddr::from(a.ip())));
    }

    pub(super) fn on_reflector(&mut self, event: request_response::Event<ReflectorQuery, ReflectorInfo>) {
        match event {
            request_response::Event::Message {
                message: request_response::Message::Request { channel, .. }, ..
            } => {
                let info = ReflectorInfo { calls_address: self.calls_address.map(|a| a.to_string()) };
                let _ = self.swarm.behaviour_mut().reflector.send_response(channel, info);
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            } => {
                let address = response.calls_address.and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                match address {
                    Some(address) if is_global_address(&Multiaddr::from(address.ip())) => {
                        if self.nat.reflectors.len() < 64 {
                            self.nat.reflectors.insert(peer, address);
                        }
                        self.events.push(DiscoveryEvent::Reflector { peer_id: peer, address });
                    }
                    _ => tracing::debug!(%peer, "the peer has no public call endpoint"),
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "reflector query failed");
            }
            _ => {}
        }
    }
}
