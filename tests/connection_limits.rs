//! hail's libp2p swarm (the real behaviour, real TCP + Noise + yamux on loopback) under more
//! connections than its limits allow: the extras are refused, and a peer that was connected before
//! stays connected and is still answered.

use std::time::Duration;

use futures::StreamExt;
use hail::discovery::behaviour::{Behaviour, BehaviourEvent, build_swarm};
use hail::discovery::config::RelayMode;
use hail::discovery::limits::Refused;
use hail::discovery::reflector::{ReflectorInfo, ReflectorQuery};
use hail::discovery::{ConnectionLimits, DhtMode, NetworkConfig};
use libp2p::identity::Keypair;
use libp2p::request_response;
use libp2p::swarm::{ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;

type Event = SwarmEvent<BehaviourEvent>;
type Command = Box<dyn FnOnce(&mut Swarm<Behaviour>) + Send>;

/// A swarm running in its own task: commands in, events out.
struct Node {
    peer_id: PeerId,
    address: Multiaddr,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
}

async fn node(limits: ConnectionLimits) -> Node {
    let mut config = NetworkConfig::from_text(
        Some(&["/ip4/127.0.0.1/tcp/0".to_owned()]),
        None,
        Some(false),
        None,
        Some(DhtMode::Client),
    )
    .unwrap();
    config.relay = RelayMode::Off;
    config.limits = limits;
    let mut swarm = build_swarm(&Keypair::generate_ed25519(), &config).unwrap();
    swarm.listen_on(config.listen[0].clone()).unwrap();
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let peer_id = *swarm.local_peer_id();
    let (commands, mut command_rx) = mpsc::unbounded_channel::<Command>();
    let (event_tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    // Every node answers reflector queries (what `still_answered_by` asks).
                    if let SwarmEvent::Behaviour(BehaviourEvent::Reflector(request_response::Event::Message {
                        message: request_response::Message::Request { channel, .. },
                        ..
                    })) = event
                    {
                        let _ = swarm.behaviour_mut().reflector.send_response(channel, ReflectorInfo::default());
                        continue;
                    }
                    if event_tx.send(event).is_err() {
                        return;
                    }
                }
                command = command_rx.recv() => match command {
                    Some(command) => command(&mut swarm),
                    None => return,
                },
            }
        }
    });
    Node { peer_id, address, commands, events }
}

impl Node {
    fn dial(&self, to: &Node) {
        let address = to.address.clone();
        self.commands.send(Box::new(move |s| s.dial(address).unwrap())).unwrap();
    }

    /// Runs `f` on the swarm and returns its answer.
    async fn ask<T: Send + 'static>(&self, f: impl FnOnce(&mut Swarm<Behaviour>) -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(Box::new(move |s| drop(tx.send(f(s))))).unwrap();
        rx.await.unwrap()
    }

    /// The next event `pick` accepts. The bound only keeps a broken run from hanging.
    async fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(t) = pick(self.events.recv().await.expect("the swarm task runs")) {
                    return t;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("never saw: {what}"))
    }

    /// Waits until a connection with `peer` is established.
    async fn connected_to(&mut self, peer: PeerId) {
        self.wait_for("a connection", |e| match e {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => Some(()),
            _ => None,
        })
        .await
    }

    /// Waits for the next inbound connection refused by a limit, and returns why.
    async fn refused(&mut self) -> libp2p::swarm::ConnectionDenied {
        self.wait_for("a refused connection", |e| match e {
            SwarmEvent::IncomingConnectionError { error: ListenError::Denied { cause }, .. } => Some(cause),
            SwarmEvent::ConnectionEstablished { peer_id, .. } => panic!("{peer_id} got in over the limit"),
            _ => None,
        })
        .await
    }

    /// Sends a request over the existing connection to `to` and waits for the answer: proof that
    /// the connection still works.
    async fn still_answered_by(&mut self, to: PeerId) {
        self.ask(move |s| {
            s.behaviour_mut().reflector.send_request(&to, ReflectorQuery {});
        })
        .await;
        self.wait_for("the reflector's answer", |e| match e {
            SwarmEvent::Behaviour(BehaviourEvent::Reflector(request_response::Event::Message {
                peer,
                message: request_response::Message::Response { .. },
                ..
            })) if peer == to => Some(()),
            SwarmEvent::Behaviour(BehaviourEvent::Reflector(request_response::Event::OutboundFailure {
                error,
                ..
            })) => panic!("the request failed: {error}"),
            _ => None,
        })
        .await
    }
}

fn no_memory_cap() -> ConnectionLimits {
    ConnectionLimits { max_memory_bytes: None, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_total_are_refused_and_the_first_peers_keep_theirs() {
    let mut server = node(ConnectionLimits { max_established: 2, ..no_memory_cap() }).await;
    let mut first = node(no_memory_cap()).await;
    let second = node(no_memory_cap()).await;
    first.dial(&server);
    server.connected_to(first.peer_id).await;
    second.dial(&server);
    server.connected_to(second.peer_id).await;

    let extras: Vec<Node> = futures::future::join_all((0..3).map(|_| node(no_memory_cap()))).await;
    for extra in &extras {
        extra.dial(&server);
    }
    for _ in &extras {
        let cause = server.refused().await;
        let exceeded = cause.downcast_ref::<libp2p::connection_limits::Exceeded>().expect("refused by the limit");
        assert_eq!(exceeded.limit(), 2);
    }
    let connected = server.ask(|s| s.connected_peers().copied().collect::<Vec<_>>()).await;
    assert_eq!(connected.len(), 2, "{connected:?}");
    assert!(connected.contains(&first.peer_id) && connected.contains(&second.peer_id));
    first.still_answered_by(server.peer_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_limit_are_refused_before_their_handshake() {
    let limits = ConnectionLimits { max_incoming_per_ip: 2, limit_loopback: true, ..no_memory_cap() };
    let mut server = node(limits).await;
    let mut first = node(no_memory_cap()).await;
    let second = node(no_memory_cap()).await;
    first.dial(&server);
    server.connected_to(first.peer_id).await;
    second.dial(&server);
    server.connected_to(second.peer_id).await;

    let extras: Vec<Node> = futures::future::join_all((0..3).map(|_| node(no_memory_cap()))).await;
    for extra in &extras {
        extra.dial(&server);
    }
    for _ in &extras {
        let cause = server.refused().await;
        let refused = cause.downcast_ref::<Refused>().expect("refused by the per-address limit");
        assert!(matches!(refused, Refused::PerAddress { limit: 2, .. }), "{refused}");
    }
    assert!(server.ask(|s| s.connected_peers().count()).await == 2);
    first.still_answered_by(server.peer_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_memory_cap_no_new_inbound_connection_is_taken() {
    let mut server = node(ConnectionLimits { max_memory_bytes: Some(1), ..Default::default() }).await;
    let client = node(no_memory_cap()).await;
    client.dial(&server);
    let cause = server.refused().await;
    assert!(matches!(cause.downcast_ref::<Refused>(), Some(Refused::Memory { cap: 1, .. })));
    assert_eq!(server.ask(|s| s.connected_peers().count()).await, 0);
}
