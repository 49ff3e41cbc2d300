//! Group calls between real daemons on loopback, driven by the `hail` CLI (issue 13, the control
//! plane): the founder invites, invitees answer, the mesh completes, every member shows the same
//! group emoji; `hail add` brings a fourth in and the emoji change; `hail leave` takes one out and
//! the others go on; a stranger dialing a group leg is refused; `hail call a b` follows the group
//! until we are out of it.

mod common;
#[path = "common/group_daemons.rs"]
mod group_daemons;
#[path = "common/invite_peer.rs"]
mod invite_peer;

use std::time::Duration;

use common::{Background, wait_status};
use group_daemons::{all_settled, answer_group_invite, contacts_all, peer_id, wait_event, watch};
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};

#[test]
fn three_join_with_the_same_emoji_a_fourth_is_added_and_one_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let d = contacts_all(dir.path(), &["alice", "bob", "carol", "dave"]);
    let (alice, bob, carol, dave) = (&d[0], &d[1], &d[2], &d[3]);
    let ids: Vec<String> = d.iter().map(peer_id).collect();

    let events = watch(alice);
    // Alice founds the call; bob and carol ring, answer, and the mesh completes between them.
    let started = alice.hail(&["--json", "call", "bob", "carol", "--detach"]).json();
    assert_eq!(started["ok"]["state"], "in_call", "{started}");
    answer_group_invite(bob, "alice");
    answer_group_invite(carol, "alice");
    let (emoji_3, epoch_3) = all_settled(&[alice, bob, carol], &ids[..3]);
    // The media plane runs on the legs: each member's frames reach the two others, under the
    // group's keys (the others open them).
    for d in [alice, bob, carol] {
        let heard = wait_status(d, "audio from both others", |s| {
            let a = &s["group"]["audio"];
            a["send"]["frames"].as_u64().unwrap_or(0) > 0
                && a["participants"].as_array().is_some_and(|p| {
                    // Opened and taken into that sender's jitter buffer, not only received.
                    p.len() == 2 && p.iter().all(|p| p["jitter"]["received"].as_u64().unwrap_or(0) > 10)
                })
        });
        assert!(heard["group"]["participants"].as_array().unwrap().iter().all(|p| p["media"] == true || p["me"] == true));
    }
    let text = bob.hail(&["status"]).ok().to_owned();
    assert!(text.contains("Group") && text.contains("alice") && text.contains("carol"), "{text}");

    // A fourth joins through `hail add`: everyone's emoji change, and agree again.
    alice.hail(&["add", "dave"]).ok();
    answer_group_invite(dave, "alice");
    let (emoji_4, epoch_4) = all_settled(&[alice, bob, carol, dave], &ids);
    assert!(epoch_4 > epoch_3);
    assert_ne!(emoji_4, emoji_3, "a join changes the group's emoji");

    // Carol leaves: the others go on in a new epoch without her, with new emoji.
    carol.hail(&["leave"]).ok();
    let rest = [ids[0].clone(), ids[1].clone(), ids[3].clone()];
    let (emoji_l, epoch_l) = all_settled(&[alice, bob, dave], &rest);
    assert!(epoch_l > epoch_4);
    assert_ne!(emoji_l, emoji_4, "a leave changes the group's emoji");
    let gone = wait_status(carol, "carol out", |s| s["group"]["state"] == "ended");
    assert_eq!(gone["group"]["end_reason"], "left", "{gone}");

    // Bob hangs up: in a group call that is leaving (there is no host); alice and dave go on.
    let left = bob.hail(&["--json", "hangup"]).json();
    assert!(left["ok"]["participants"].is_array(), "{left}");
    all_settled(&[alice, dave], &[ids[0].clone(), ids[3].clone()]);
    // What `hail watch` saw at alice: joins, emoji, leaves, each with the group as it was then.
    let seen = events.lock().unwrap().clone();
    let of = |kind: &str| seen.iter().filter(|e| e["event"] == kind).cloned().collect::<Vec<_>>();
    let joined: Vec<String> = of("group.joined").iter().filter_map(|e| e["name"].as_str().map(str::to_owned)).collect();
    for n in ["bob", "carol", "dave"] {
        assert!(joined.iter().any(|j| j == n), "{n} joined: {seen:?}");
    }
    let left = of("group.left");
    // `left` when carol's own word reached alice before the sequencer's commit, `removed` when
    // the commit came first (they travel on different legs).
    assert!(left.iter().any(|e| e["name"] == "carol" && (e["reason"] == "left" || e["reason"] == "removed")), "{left:?}");
    assert!(left.iter().any(|e| e["name"] == "bob"), "{left:?}");
    let emoji = of("group.emoji");
    assert!(emoji.iter().any(|e| e["group"]["emoji"] == emoji_3) && emoji.iter().any(|e| e["group"]["emoji"] == emoji_4));

    alice.hail(&["leave"]).ok();
    wait_status(dave, "dave alone", |s| {
        s["group"]["participants"].as_array().is_some_and(|p| p.len() == 1) || s["group"]["state"] == "ended"
    });
}

/// Sends `request` as an invite from a throw-away libp2p identity; returns the reply.
async fn stranger_invite(address: &str, request: Value) -> Value {
    let mut swarm = invite_peer::hostile_node();
    let (addr, peer) = address.rsplit_once("/p2p/").unwrap();
    let (addr, peer): (Multiaddr, PeerId) = (addr.parse().unwrap(), peer.parse().unwrap());
    swarm.add_peer_address(peer, addr);
    invite_peer::invite(&mut swarm, peer, request).await.expect("an answer")
}

#[test]
fn a_stranger_dialing_a_group_leg_is_refused_and_the_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = contacts_all(dir.path(), &["alice", "bob"]);
    let (alice, bob) = (&d[0], &d[1]);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    let events = watch(alice);
    let nobody = common::peer_id(9);
    alice.hail(&["call", "bob", &nobody, "--detach"]).ok();
    answer_group_invite(bob, "alice");
    wait_status(bob, "bob in the call", |s| s["group"]["state"] == "in_call" && s["group"]["emoji_text"].is_string());
    let status = bob.hail(&["--json", "status"]).json()["ok"].clone();
    let group_id = status["group"]["call_id"].as_str().unwrap().to_owned();
    let address = format!("{}/p2p/{}", status["network"]["listen_addresses"][0].as_str().unwrap(), ids[1]);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (kind, want) in [("mesh", "rejected"), ("join", "busy")] {
        let invite = json!({
            "version": 1,
            "call_id": "00112233445566778899aabbccddeeff",
            "candidates": ["127.0.0.1:9"],
            "group": {"id": group_id, "kind": kind, "members": [ids[0]], "version": hail::call::signal::GROUP_VERSION},
        });
        let reply = runtime.block_on(stranger_invite(&address, invite));
        assert_eq!(reply["reply"], want, "{kind}: {reply}");
    }
    // An invitation of another group protocol (absent: the first) is refused before it rings,
    // saying why.
    let old = json!({
        "version": 1,
        "call_id": "00112233445566778899aabbccddeef1",
        "candidates": ["127.0.0.1:9"],
        "group": {"id": "ffeeddccbbaa99887766554433221101", "kind": "join", "members": [ids[0]]},
    });
    let reply = runtime.block_on(stranger_invite(&address, old));
    assert_eq!(reply["reply"], "unavailable", "{reply}");
    assert!(reply["reason"].as_str().unwrap().contains("version 1"), "{reply}");
    // A mesh leg for a group bob is not in is refused too.
    let other = json!({
        "version": 1,
        "call_id": "00112233445566778899aabbccddeef0",
        "candidates": ["127.0.0.1:9"],
        "group": {"id": "ffeeddccbbaa99887766554433221100", "kind": "mesh", "members": [], "version": hail::call::signal::GROUP_VERSION},
    });
    assert_eq!(runtime.block_on(stranger_invite(&address, other))["reply"], "rejected");
    // Nothing rang and the group is as it was.
    let after = bob.hail(&["--json", "status"]).json()["ok"].clone();
    assert!(after["call"].is_null() || after["call"]["group"].is_null() || after["call"]["end_reason"].is_object(), "{after}");
    assert_eq!(after["group"]["state"], "in_call");
    assert_eq!(after["group"]["emoji"], status["group"]["emoji"]);

    // The invitation to a peer nobody can find ends, and alice is told; the call goes on.
    let failed = wait_event(&events, 30, "group.invite_failed", |e| e["event"] == "group.invite_failed");
    assert_eq!(failed["peer_id"], nobody.as_str(), "{failed}");
    assert!(failed["reason"].as_str().unwrap().contains("unreachable"), "{failed}");
    let alice_now = wait_status(alice, "alice without the invitee", |s| {
        s["group"]["participants"].as_array().is_some_and(|p| p.len() == 2)
    });
    assert_eq!(alice_now["group"]["state"], "in_call");
}

/// What the fake member "mallory" does on a join leg.
#[derive(Clone, Copy, PartialEq)]
enum Mallory {
    /// Answers like a hail that predates group calls: `ringing` without `group`.
    OldHail,
    /// Answers like a hail of the first group protocol: `ringing` with `group` and no
    /// `group_version`.
    OldGroupHail,
    /// Takes the leg, answers, and once the group's invitation arrives sends garbage group frames.
    Garbage,
}

/// The frames mallory sends on its leg: hex that is not hex, bytes that are no group message, a
/// message for another call, a truncated one, a JSON frame that is not a message at all.
fn garbage_frames() -> Vec<Vec<u8>> {
    let join_for_another_call = [&[0x01, 0x02][..], &[0xEE; 16]].concat();
    vec![
        br#"{"type":"group","data":"zz"}"#.to_vec(),
        hail::call::signal::ControlMessage::group(&[0xFF; 300]).body(),
        hail::call::signal::ControlMessage::group(&join_for_another_call).body(),
        hail::call::signal::ControlMessage::group(&[0x01, 0x04, 0x13]).body(),
        hail::call::signal::ControlMessage::group(&[]).body(),
        br#"{"type":"group","data":12}"#.to_vec(),
        b"\xff\xfe not json".to_vec(),
    ]
}

/// A fake member with a real identity, libp2p peer and QUIC endpoint: answers the invites it gets
/// as `mode` says; tells `sent` once its garbage is out (or once it answered, as an old hail).
async fn mallory(identity: hail::identity::Identity, mode: Mallory, sent: std::sync::mpsc::Sender<()>, listen: tokio::sync::oneshot::Sender<(String, String)>) {
    use hail::call::signal::ControlMessage;
    use hail::transport::link::{LinkEvent, LinkInbox, LinkSetup, PeerLink};
    use futures::StreamExt;
    use libp2p::request_response;
    use libp2p::swarm::SwarmEvent;

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity.keypair().clone())
        .with_tokio()
        .with_tcp(libp2p::tcp::Config::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| invite_peer::Hostile {
            invite: request_response::json::Behaviour::new(
                [(libp2p::StreamProtocol::new("/hail/invite/1"), request_response::ProtocolSupport::Full)],
                request_response::Config::default(),
            ),
        })
        .unwrap()
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
    let endpoint = hail::transport::endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let quic = endpoint.local_addr().unwrap().to_string();
    let mut listen = Some(listen);
    let (tx, mut events) = tokio::sync::mpsc::channel::<(hail::call::CallId, LinkEvent)>(64);
    let wrap: fn(hail::call::CallId, LinkEvent) -> (hail::call::CallId, LinkEvent) = |id, e| (id, e);
    let mut link: Option<PeerLink> = None;
    let mut garbage_out = false;
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    if let Some(l) = listen.take() {
                        let _ = l.send((address.to_string(), quic.clone()));
                    }
                }
                SwarmEvent::Behaviour(invite_peer::HostileEvent::Invite(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let invite: hail::call::signal::Invite = serde_json::from_value(request).unwrap();
                    let mut reply = json!({"reply": "ringing", "candidates": [quic], "sas_table": 2});
                    match mode {
                        Mallory::Garbage => {
                            reply["group"] = json!(true);
                            reply["group_version"] = json!(hail::call::signal::GROUP_VERSION);
                        }
                        // A hail with group calls of the first version: `group`, no `group_version`.
                        Mallory::OldGroupHail => reply["group"] = json!(true),
                        Mallory::OldHail => {}
                    }
                    let _ = swarm.behaviour_mut().invite.send_response(channel, reply);
                    if matches!(mode, Mallory::OldHail | Mallory::OldGroupHail) {
                        let _ = sent.send(());
                        continue;
                    }
                    let candidates = hail::call::signal::parse_candidates(&invite.candidates).unwrap();
                    let setup = LinkSetup {
                        endpoint: endpoint.clone(),
                        role: hail::crypto::handshake::HandshakeRole::Responder,
                        call_id: invite.call_id,
                        candidates,
                        params: hail::crypto::handshake::HandshakeParams {
                            static_secret: identity.noise_static_secret(),
                            binding: identity.noise_binding(),
                            call_id: invite.call_id.0,
                            tls_exporter: [0; 32],
                            expected_peer: Some(peer),
                            fixed_ephemeral: None,
                        },
                        time_limit: Duration::from_secs(15),
                    };
                    let (l, driver) = PeerLink::connect(setup, LinkInbox::default(), tx.clone(), wrap);
                    tokio::spawn(driver);
                    link = Some(l);
                }
                _ => {}
            },
            Some((_, event)) = events.recv() => match event {
                LinkEvent::Up(_) => {
                    let _ = link.as_ref().unwrap().send_control(ControlMessage::Accept.body());
                }
                LinkEvent::Control(body) => {
                    let group = matches!(ControlMessage::decode(&body), Ok(ControlMessage::Group { .. }));
                    if group && !garbage_out {
                        garbage_out = true;
                        for frame in garbage_frames() {
                            let _ = link.as_ref().unwrap().send_control(frame);
                        }
                        let _ = link.as_ref().unwrap().send_control(ControlMessage::Ping.body());
                        let _ = sent.send(());
                    }
                }
                _ => {}
            },
        }
    }
}

/// A member's leg that sends garbage group frames (a hostile peer that did complete the handshake:
/// it is who the founder called), and a contact whose hail predates group calls: the founder's
/// daemon refuses the frames, tells why the old hail did not join, and the call goes on.
#[test]
fn garbage_on_a_group_leg_and_an_old_hail_leave_the_call_going() {
    let dir = tempfile::tempdir().unwrap();
    let d = contacts_all(dir.path(), &["alice", "bob"]);
    let (alice, bob) = (&d[0], &d[1]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut fakes = Vec::new();
    for (name, mode) in [("mallory", Mallory::Garbage), ("oscar", Mallory::OldHail), ("olga", Mallory::OldGroupHail)] {
        let identity = hail::identity::Identity::generate();
        let (sent_tx, sent) = std::sync::mpsc::channel();
        let (listen_tx, listen) = tokio::sync::oneshot::channel();
        runtime.spawn(mallory(identity.clone(), mode, sent_tx, listen_tx));
        let (address, _) = runtime.block_on(listen).unwrap();
        let card = hail::identity::Card {
            peer_id: identity.peer_id(),
            name: hail::name::Name::parse(name).unwrap(),
            addresses: vec![address.parse().unwrap()],
        };
        alice.hail(&["contacts", "add", name, &card.to_string()]).ok();
        fakes.push((identity.peer_id().to_base58(), sent));
    }
    let events = watch(alice);
    alice.hail(&["call", "bob", "mallory", "oscar", "olga", "--detach"]).ok();
    answer_group_invite(bob, "alice");
    for (_, sent) in &fakes {
        sent.recv_timeout(Duration::from_secs(30)).expect("the fake member got its invite (and sent its garbage)");
    }
    // The old hail's leg ends with the reason; mallory's garbage changes nothing.
    let old = wait_event(&events, 20, "group.invite_failed for oscar", |e| {
        e["event"] == "group.invite_failed" && e["name"] == "oscar"
    });
    assert!(old["reason"].as_str().unwrap().contains("does not take group calls"), "{old}");
    // The hail of another group protocol likewise: its leg ends, with the versions.
    let other = wait_event(&events, 20, "group.invite_failed for olga", |e| {
        e["event"] == "group.invite_failed" && e["name"] == "olga"
    });
    let reason = other["reason"].as_str().unwrap();
    assert!(reason.contains("version 1") && reason.contains(&hail::call::signal::GROUP_VERSION.to_string()), "{other}");
    let ids = [peer_id(alice), peer_id(bob)];
    all_settled(&[alice, bob], &ids);
    let status = alice.hail(&["--json", "status"]).json()["ok"].clone();
    let mallory_id = &fakes[0].0;
    let listed = status["group"]["participants"].as_array().unwrap().iter().find(|p| p["peer_id"] == mallory_id.as_str()).cloned();
    assert!(listed.is_none_or(|p| p["state"] == "invited"), "mallory never became a member: {status}");
    assert!(alice.hail(&["status"]).status.success(), "alice's daemon still answers");
    // Each kind of garbage was seen and refused on the node's path (not just lost).
    let log = alice.log_text();
    for said in ["ignored a group message that is not hex", "refused a group message", "ignored a malformed control message"] {
        assert!(log.contains(said), "alice's log lacks {said:?}");
    }
}

/// A member who left can be invited again, and again: each time the group settles with her in a
/// new epoch, and without her once she leaves (`benches/group_call.rs`'s join samples do this ten
/// times in a row). Invites are rationed per caller (`call::rate_limit`: 3 per 10 s), so a fourth
/// invitation within 10 s is refused at the invitee and the inviter is told why; once the window
/// has passed she can be added again. `hail add` needs a group call, so the group starts with three.
#[test]
fn a_member_who_left_is_added_again_and_a_fourth_invite_within_ten_seconds_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = contacts_all(dir.path(), &["alice", "bob", "carol", "dave"]);
    let (alice, bob, carol, dave) = (&d[0], &d[1], &d[2], &d[3]);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    alice.hail(&["call", "bob", "carol", "--detach"]).ok();
    answer_group_invite(bob, "alice");
    answer_group_invite(carol, "alice");
    let (_, mut epoch) = all_settled(&[alice, bob, carol], &ids[..3]);
    let events = watch(alice);
    let first_invite = std::time::Instant::now();
    let mut join_and_leave = |round: &str| {
        alice.hail(&["add", "dave"]).ok();
        answer_group_invite(dave, "alice");
        let (_, joined) = all_settled(&[alice, bob, carol, dave], &ids);
        assert!(joined > epoch, "{round}: a join makes a new epoch");
        dave.hail(&["leave"]).ok();
        let (_, left) = all_settled(&[alice, bob, carol], &ids[..3]);
        assert!(left > joined, "{round}: a leave makes a new epoch");
        epoch = left;
    };
    for round in 0..3 {
        join_and_leave(&format!("round {round}"));
    }
    // The fourth invitation to dave within 10 s: his node refuses it, alice hears why.
    alice.hail(&["add", "dave"]).ok();
    let failed = wait_event(&events, 20, "group.invite_failed for dave", |e| {
        e["event"] == "group.invite_failed" && e["name"] == "dave"
    });
    assert!(failed["reason"].as_str().unwrap().contains("too many calls"), "{failed}");
    let status = dave.hail(&["--json", "status"]).json()["ok"].clone();
    assert!(status["call"].is_null() || status["call"]["state"] != "ringing", "dave's node did not ring: {status}");
    all_settled(&[alice, bob, carol], &ids[..3]);
    // After the window, he can be added again.
    std::thread::sleep(
        (first_invite + Duration::from_millis(10_500)).saturating_duration_since(std::time::Instant::now()),
    );
    join_and_leave("after the window");
}

/// Waits (up to 30 s) until `d` has no group call in progress.
fn out_of_the_group(d: &common::TestDaemon) {
    wait_status(d, "out of the group call", |s| s["group"].is_null() || s["group"]["state"] == "ended");
}

/// `d` rings with alice's group invitation; it rejects it.
fn reject_group_invite(d: &common::TestDaemon) {
    wait_status(d, "a group invitation rings", |s| {
        s["call"]["state"] == "ringing" && s["call"]["group"].is_object() && s["call"]["end_reason"].is_null()
    });
    d.hail(&["reject"]).ok();
}

/// `hail call bob carol`, not detached, follows the group in lines (stdout is not a terminal):
/// who joined and who did not, the group's emoji; it leaves on Ctrl-C, once everyone else has
/// left, and once nobody came (then it exits 1, as a 1:1 call nobody answered does).
#[test]
fn a_group_call_is_followed_until_we_are_out_and_left_when_nobody_else_is_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = contacts_all(dir.path(), &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&d[0], &d[1], &d[2]);
    let ids: Vec<String> = d.iter().map(peer_id).collect();

    // Bob joins, carol declines; then bob leaves: nobody else is in the call, so alice's
    // follower leaves too, and exits 0 (someone did join).
    let follower = Background::start(&alice.home, &["call", "bob", "carol"]);
    answer_group_invite(bob, "alice");
    reject_group_invite(carol);
    all_settled(&[alice, bob], &ids[..2]);
    bob.hail(&["leave"]).ok();
    let out = follower.finish();
    assert!(out.status.success(), "{out:?}");
    for line in ["Group call ", "inviting bob, carol", "bob joined the group call", "carol did not join", "Group emoji: "] {
        assert!(out.stdout.contains(line), "{line:?} in {}", out.stdout);
    }
    assert!(out.stdout.contains("Everyone else left; leaving."), "{}", out.stdout);
    assert!(out.stdout.contains("You are out of the group call (left)"), "{}", out.stdout);
    out_of_the_group(alice);
    out_of_the_group(bob);

    // Both join; Ctrl-C at alice's follower leaves the call, which goes on for bob and carol.
    let follower = Background::start(&alice.home, &["call", "bob", "carol"]);
    answer_group_invite(bob, "alice");
    answer_group_invite(carol, "alice");
    all_settled(&[alice, bob, carol], &ids);
    // The daemon sends the emoji event before its status shows them (settled above): the
    // follower prints it before it sees the end of the call.
    let status = alice.hail(&["--json", "status"]).json();
    let emoji_text = status["ok"]["group"]["emoji_text"].as_str().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    follower.interrupt();
    let out = follower.finish();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains(&emoji_text), "the group's emoji {emoji_text:?} in {}", out.stdout);
    assert!(out.stdout.contains("carol joined the group call"), "{}", out.stdout);
    all_settled(&[bob, carol], &ids[1..]);
    out_of_the_group(alice);
    bob.hail(&["leave"]).ok();
    carol.hail(&["leave"]).ok();
    out_of_the_group(bob);
    out_of_the_group(carol);

    // Both decline: alice's follower says nobody joined, leaves, and exits 1.
    let follower = Background::start(&alice.home, &["call", "bob", "carol"]);
    reject_group_invite(bob);
    reject_group_invite(carol);
    let out = follower.finish();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.contains("Nobody joined; leaving."), "{}", out.stdout);
    out_of_the_group(alice);
}
