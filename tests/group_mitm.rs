//! A man in the middle of one pair of a real group call (issue 13): four real daemons, and
//! mallory, who holds carol's and dave's identity keys (stolen) and whose address carol and dave
//! were given for each other (cards of the right PeerIds with mallory's address: cards are hints,
//! not promises). When carol and dave complete the mesh, each of them reaches mallory, who answers
//! as the other, dials the other as the first, and passes everything on both ways: invites,
//! control frames (the group's sender keys and its emoji round included) and media datagrams.
//! Nothing in either handshake fails: mallory has the keys. What gives him away is the group's
//! emoji: carol and dave report different handshakes for their pair, so the members outside the
//! pair say so (`group.disputed`), and the later of the pair in member order shows emoji that
//! differ from everyone else's (protocols/group-sas-v1.md; tests/group_sim.rs has the same
//! attack on the sans-IO members).

mod common;
#[path = "common/group_daemons.rs"]
mod group_daemons;
#[path = "common/invite_peer.rs"]
mod invite_peer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::TestDaemon;
use futures::StreamExt;
use group_daemons::{peer_id, wait_event, watch};
use hail::call::CallId;
use hail::call::signal::Invite;
use hail::identity::Identity;
use hail::identity::card::Card;
use hail::media_link::MediaLink;
use hail::transport::link::{LinkEvent, LinkInbox, LinkSetup, PeerLink};
use invite_peer::{Hostile, HostileEvent};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use serde_json::Value;

/// A libp2p peer speaking only `/hail/invite/1` under a stolen identity.
fn swarm_as(identity: &Identity) -> Swarm<Hostile> {
    libp2p::SwarmBuilder::with_existing_identity(identity.keypair().clone())
        .with_tokio()
        .with_tcp(libp2p::tcp::Config::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| Hostile {
            invite: request_response::json::Behaviour::new(
                [(libp2p::StreamProtocol::new("/hail/invite/1"), request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
            ),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build()
}

/// One of mallory's two faces: to `victim`, he is `impersonates` (whose key he holds).
struct Face {
    swarm: Swarm<Hostile>,
    endpoint: quinn::Endpoint,
    quic: String,
    /// The identity he shows on this face.
    impersonates: Identity,
    /// The real node this face talks to.
    victim: PeerId,
}

impl Face {
    fn new(impersonates: Identity, victim: PeerId) -> Face {
        let endpoint = hail::transport::endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let quic = endpoint.local_addr().unwrap().to_string();
        Face { swarm: swarm_as(&impersonates), endpoint, quic, impersonates, victim }
    }

    /// Listens on loopback; returns the address.
    async fn listen(&mut self) -> Multiaddr {
        self.swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = self.swarm.select_next_some().await {
                return address;
            }
        }
    }

    /// Connects to the victim at `addresses`.
    async fn connect(&mut self, addresses: Vec<Multiaddr>) {
        self.swarm.dial(DialOpts::peer_id(self.victim).addresses(addresses).build()).unwrap();
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == self.victim => return,
                SwarmEvent::OutgoingConnectionError { error, .. } => panic!("mallory could not reach a victim: {error}"),
                _ => {}
            }
        }
    }

    /// This face's end of a leg with its victim.
    fn link(
        &self,
        role: hail::crypto::handshake::HandshakeRole,
        call_id: CallId,
        candidates: &[String],
        events: tokio::sync::mpsc::Sender<(CallId, LinkEvent)>,
    ) -> PeerLink {
        let setup = LinkSetup {
            endpoint: self.endpoint.clone(),
            role,
            call_id,
            candidates: hail::call::signal::parse_candidates(candidates).unwrap(),
            params: hail::crypto::handshake::HandshakeParams {
                static_secret: self.impersonates.noise_static_secret(),
                binding: self.impersonates.noise_binding(),
                call_id: call_id.0,
                tls_exporter: [0; 32],
                expected_peer: Some(self.victim),
                fixed_ephemeral: None,
            },
            time_limit: Duration::from_secs(15),
        };
        let wrap: fn(CallId, LinkEvent) -> (CallId, LinkEvent) = |id, e| (id, e);
        let (link, driver) = PeerLink::connect(setup, LinkInbox::default(), events, wrap);
        tokio::spawn(driver);
        link
    }
}

/// One leg carol–dave as mallory holds it: his end toward each, and what waits for an end to
/// come up.
struct Bridge {
    ends: [PeerLink; 2],
    up: [bool; 2],
    waiting: [Vec<Vec<u8>>; 2],
    pumping: bool,
}

/// What mallory passed on.
#[derive(Default)]
struct Passed {
    invites: AtomicU64,
    control: AtomicU64,
    datagrams: AtomicU64,
}

/// Copies datagrams from `from` to `to` until either closes.
async fn pump(from: Arc<dyn MediaLink>, to: Arc<dyn MediaLink>, passed: Arc<Passed>) {
    while let Ok(d) = from.read_datagram().await {
        passed.datagrams.fetch_add(1, Ordering::Relaxed);
        if to.send_datagram(d).is_err() {
            return;
        }
    }
}

/// Mallory: face 0 shows dave's identity to carol, face 1 carol's to dave. Tells `ready` the two
/// faces' libp2p addresses once both victims are connected; then passes on everything.
async fn mallory(
    mut faces: [Face; 2],
    real: [Vec<Multiaddr>; 2],
    ready: std::sync::mpsc::Sender<[Multiaddr; 2]>,
    passed: Arc<Passed>,
) {
    use hail::crypto::handshake::HandshakeRole;
    let a0 = faces[0].listen().await;
    let a1 = faces[1].listen().await;
    let [r0, r1] = real;
    faces[0].connect(r0).await;
    faces[1].connect(r1).await;
    ready.send([a0, a1]).unwrap();

    let (tx0, mut ev0) = tokio::sync::mpsc::channel::<(CallId, LinkEvent)>(256);
    let (tx1, mut ev1) = tokio::sync::mpsc::channel::<(CallId, LinkEvent)>(256);
    // An invite that came on face i, passed on through face 1 − i: the reply goes back on i.
    let mut pending: [HashMap<OutboundRequestId, (ResponseChannel<Value>, Invite)>; 2] = [HashMap::new(), HashMap::new()];
    let mut bridge: Option<Bridge> = None;
    loop {
        // (face, swarm event) or (face, link event).
        let (i, swarm_event, link_event) = {
            let [f0, f1] = &mut faces;
            tokio::select! {
                e = f0.swarm.select_next_some() => (0, Some(e), None),
                e = f1.swarm.select_next_some() => (1, Some(e), None),
                Some((_, e)) = ev0.recv() => (0, None, Some(e)),
                Some((_, e)) = ev1.recv() => (1, None, Some(e)),
            }
        };
        let o = 1 - i;
        if let Some(SwarmEvent::Behaviour(HostileEvent::Invite(event))) = swarm_event {
            match event {
                request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. }, ..
                } => {
                    let Ok(invite) = serde_json::from_value::<Invite>(request.clone()) else { continue };
                    passed.invites.fetch_add(1, Ordering::Relaxed);
                    let mut onward = request;
                    onward["candidates"] = serde_json::json!([faces[o].quic]);
                    let victim = faces[o].victim;
                    let id = faces[o].swarm.behaviour_mut().invite.send_request(&victim, onward);
                    pending[o].insert(id, (channel, invite));
                }
                request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response }, ..
                } => {
                    // Face i's victim answered the invite that came on face o.
                    let Some((channel, invite)) = pending[i].remove(&request_id) else { continue };
                    let mut back = response.clone();
                    let ringing = back["reply"] == "ringing";
                    if ringing {
                        back["candidates"] = serde_json::json!([faces[o].quic]);
                    }
                    let _ = faces[o].swarm.behaviour_mut().invite.send_response(channel, back);
                    if !ringing {
                        continue;
                    }
                    let their: Vec<String> = serde_json::from_value(response["candidates"].clone()).unwrap_or_default();
                    // Toward the inviter (on face o) mallory answers; toward the invitee (face i)
                    // he calls.
                    let (toward_o, toward_i) = (
                        faces[o].link(HandshakeRole::Responder, invite.call_id, &invite.candidates, if o == 0 { tx0.clone() } else { tx1.clone() }),
                        faces[i].link(HandshakeRole::Initiator, invite.call_id, &their, if i == 0 { tx0.clone() } else { tx1.clone() }),
                    );
                    let ends = if o == 0 { [toward_o, toward_i] } else { [toward_i, toward_o] };
                    bridge = Some(Bridge { ends, up: [false; 2], waiting: [vec![], vec![]], pumping: false });
                }
                _ => {}
            }
            continue;
        }
        let (Some(event), Some(b)) = (link_event, bridge.as_mut()) else { continue };
        match event {
            LinkEvent::Up(_) => {
                b.up[i] = true;
                for body in std::mem::take(&mut b.waiting[i]) {
                    let _ = b.ends[i].send_control(body);
                }
                if b.up == [true, true] && !b.pumping {
                    b.pumping = true;
                    let (m0, m1) = (b.ends[0].media().unwrap(), b.ends[1].media().unwrap());
                    tokio::spawn(pump(m0.clone(), m1.clone(), passed.clone()));
                    tokio::spawn(pump(m1, m0, passed.clone()));
                }
            }
            LinkEvent::Control(body) => {
                passed.control.fetch_add(1, Ordering::Relaxed);
                if b.up[o] {
                    let _ = b.ends[o].send_control(body);
                } else {
                    b.waiting[o].push(body);
                }
            }
            LinkEvent::Failed(_) | LinkEvent::Closed(_) => {}
        }
    }
}

fn card_of(d: &TestDaemon) -> Card {
    Card::parse(d.hail(&["--json", "id"]).json()["ok"]["card"].as_str().unwrap()).unwrap()
}

/// Every member's group status, once all four are in the call in one epoch with their emoji.
fn all_with_emoji(daemons: &[&TestDaemon]) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let statuses: Vec<Value> = daemons.iter().map(|d| d.hail(&["--json", "status"]).json()["ok"]["group"].clone()).collect();
        let done = statuses.iter().all(|g| {
            g["state"] == "in_call"
                && g["epoch"] == statuses[0]["epoch"]
                && g["emoji_epoch"] == g["epoch"]
                && g["participants"].as_array().is_some_and(|p| {
                    p.len() == daemons.len() && p.iter().all(|p| p["state"] == "me" || p["state"] == "connected")
                })
        });
        if done {
            return statuses;
        }
        assert!(std::time::Instant::now() < deadline, "the group did not settle with emoji: {statuses:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_man_in_the_middle_of_one_pair_sets_that_members_group_emoji_apart_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol", "dave"];
    let d: Vec<TestDaemon> = names.iter().map(|n| TestDaemon::start(&dir.path().join(n))).collect();
    let (alice, bob, carol, dave) = (&d[0], &d[1], &d[2], &d[3]);
    for (daemon, n) in d.iter().zip(names) {
        daemon.hail(&["id", "--name", n]).ok();
    }
    let cards: Vec<Card> = d.iter().map(card_of).collect();
    let ids: Vec<PeerId> = d.iter().map(|x| peer_id(x).parse().unwrap()).collect();
    let stolen = |x: &TestDaemon| Identity::load_or_create(&x.home).unwrap().0;

    // Mallory, with carol's and dave's keys, connected to both.
    let passed = Arc::new(Passed::default());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let faces_for = (stolen(dave), stolen(carol), ids[2], ids[3], cards[2].addresses.clone(), cards[3].addresses.clone());
    let p = passed.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let (as_dave, as_carol, carol_id, dave_id, carol_at, dave_at) = faces_for;
            let faces = [Face::new(as_dave, carol_id), Face::new(as_carol, dave_id)];
            mallory(faces, [carol_at, dave_at], ready_tx, p).await;
        });
    });
    let [to_carol_as_dave, to_dave_as_carol] = ready.recv_timeout(Duration::from_secs(20)).expect("mallory is ready");

    // Contacts: alice and bob have everyone's real card; carol's card for dave and dave's for carol
    // carry the right PeerId and mallory's address.
    let forged = |real: &Card, at: Multiaddr| Card { addresses: vec![at], ..real.clone() }.to_string();
    for (i, x) in d.iter().enumerate() {
        for (j, n) in names.iter().enumerate() {
            let card = match (i, j) {
                (i, j) if i == j => continue,
                (2, 3) => forged(&cards[3], to_carol_as_dave.clone()),
                (3, 2) => forged(&cards[2], to_dave_as_carol.clone()),
                _ => cards[j].to_string(),
            };
            x.hail(&["contacts", "add", n, &card]).ok();
        }
    }

    let seen = [watch(alice), watch(bob)];
    alice.hail(&["call", "bob", "carol", "dave", "--detach"]).ok();
    for x in [bob, carol, dave] {
        group_daemons::answer_group_invite(x, "alice");
    }
    let groups = all_with_emoji(&[alice, bob, carol, dave]);
    // The carol–dave leg went through mallory, media included.
    assert!(passed.invites.load(Ordering::Relaxed) >= 1, "carol and dave's leg did not reach mallory");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while passed.datagrams.load(Ordering::Relaxed) < 50 {
        assert!(std::time::Instant::now() < deadline, "no media through mallory");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(passed.control.load(Ordering::Relaxed) > 0);

    // The later of carol and dave in member order (PeerId bytes) shows emoji of its own; the
    // three others agree.
    let later = if ids[2].to_bytes() > ids[3].to_bytes() { 2 } else { 3 };
    let emoji: Vec<&Value> = groups.iter().map(|g| &g["emoji"]).collect();
    for k in 0..4 {
        if k != later {
            assert_eq!(emoji[k], emoji[0], "{} agrees with alice: {groups:#?}", names[k]);
        }
    }
    assert_ne!(emoji[later], emoji[0], "{}'s emoji stand out: {groups:#?}", names[later]);

    // Alice and bob are told in words which pair disagrees.
    let pair = {
        let mut p = vec![ids[2].to_string(), ids[3].to_string()];
        p.sort();
        p
    };
    for (who, events) in ["alice", "bob"].iter().zip(&seen) {
        let disputed = wait_event(events, 20, &format!("group.disputed at {who}"), |e| e["event"] == "group.disputed");
        let mut named: Vec<String> =
            disputed["peer_ids"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
        named.sort();
        assert_eq!(named, pair, "{who} names carol and dave: {disputed}");
    }
}
