//! Where our call endpoint is: the address we tell others (`/hail/reflector/1` answers), and what
//! public peers tell us about it.

use super::*;

impl Discovery {
    /// Our call endpoint's address: told to peers that ask (peers behind NAT learn their
    /// reflexive address from it) and where the media relay opens its ports, if it is public, or,
    /// with `--relay on`, if it is any address peers on this node's network can reach (private and
    /// carrier-grade NAT ranges included: the operator said this node serves its network).
    pub fn set_calls_address(&mut self, address: Option<std::net::SocketAddr>) {
        self.calls_endpoint = address;
        let relay_on = self.config.relay == RelayMode::On;
        self.calls_address = address.filter(|a| {
            let scope = IpScope::of(a.ip());
            scope.is_global() || (relay_on && matches!(scope, IpScope::Private | IpScope::SharedNat))
        });
        self.check_relay_service();
    }

    /// Why this node's relay does not serve now (`None`: it serves, or it is off), in words
    /// that say what to change.
    pub fn relay_not_serving(&self) -> Option<String> {
        let listening = || {
            let mut l: Vec<String> = self
                .swarm
                .listeners()
                .filter(|a| !a.iter().any(|p| matches!(p, Protocol::P2pCircuit)))
                .map(ToString::to_string)
                .collect();
            l.sort();
            if l.is_empty() { "nothing".to_owned() } else { l.join(", ") }
        };
        match self.config.relay {
            RelayMode::Off => None,
            RelayMode::Auto if !self.nat.serving => Some(format!(
                "relay auto: relays once AutoNAT finds this node publicly reachable (now {}); --relay on \
                 serves at once",
                self.reachability_text()
            )),
            RelayMode::Auto | RelayMode::On if !self.nat.serving => {
                if self.swarm.external_addresses().next().is_none() {
                    Some(format!(
                        "no public address to relay at: this node listens on {} (none publicly \
                         routable); give the address peers reach it at with --external-address \
                         (e.g. /ip4/100.64.0.1/tcp/4001)",
                        listening()
                    ))
                } else {
                    Some("the relay service is starting".into())
                }
            }
            _ => match (self.calls_address, self.calls_endpoint) {
                (Some(_), _) => None,
                (None, Some(endpoint)) => Some(format!(
                    "relays connections but not media: the call endpoint is at {endpoint}, which \
                     peers cannot reach; give --media-listen IP:PORT (or --media-advertise) with an \
                     address of this host that they can"
                )),
                (None, None) => Some("relays connections but not media: the call endpoint has no address".into()),
            },
        }
    }

    /// Logs why the relay does not serve, once per change of reason.
    pub(super) fn check_relay_service(&mut self) {
        let reason = self.relay_not_serving();
        if reason == self.relay_reason_logged {
            return;
        }
        match &reason {
            Some(r) if self.config.relay == RelayMode::On => tracing::warn!(reason = %r, "relay on, but not serving"),
            Some(r) => tracing::info!(reason = %r, "not relaying"),
            None => tracing::info!("relaying for others (connections and media)"),
        }
        self.relay_reason_logged = reason;
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
                // A public endpoint, or one at the very IP we are connected to the peer at (a relay
                // on a private or carrier-grade NAT network: it cannot point us elsewhere).
                let peer_ip = self.peer_ips.get(&peer);
                let trusted = |a: &std::net::SocketAddr| {
                    is_global_address(&Multiaddr::from(a.ip()))
                        || peer_ip.is_some_and(|ip| {
                            crate::ip_scope::canonical(ip) == crate::ip_scope::canonical(a.ip())
                                && !IpScope::of(ip).is_global()
                                && IpScope::of(ip) != IpScope::Loopback
                        })
                };
                match address {
                    Some(address) if trusted(&address) => {
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
