//! A hostile libp2p peer and a hostile QUIC client against a real daemon: malformed invites,
//! garbage call streams, garbage handshake messages. Each gets refused; the daemon keeps serving and
//! still completes a normal call afterwards.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/invite_peer.rs"]
mod invite_peer;

use std::time::Duration;

use hail::call::CallId;
use hail::control::Command;
use hail::transport::channel::{write_frame, write_header};
use invite_peer::{hostile_node, invite};
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};

/// `member` places an audio call to its contact `who`; the reply (ringing) or why not.
async fn call(member: &cluster::Member, who: &str) -> Result<Value, hail::control::ClientError> {
    let call = Command::Call {
        peer: who.into(),
        video: false,
        audio_in: None,
        audio_out: None,
        audio_processing: None,
        video_in: None,
        video_out: None,
    };
    member.ask(call).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_invites_and_call_streams_are_refused_and_the_daemon_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster::network(dir.path(), 2).await;
    let target = &members[0];
    let (addr, peer) = target.address.rsplit_once("/p2p/").unwrap();
    let (addr, peer): (Multiaddr, PeerId) = (addr.parse().unwrap(), peer.parse().unwrap());

    let mut hostile = hostile_node();
    hostile.add_peer_address(peer, addr);

    // JSON that is not an invite: the stream is dropped, nothing rings.
    for garbage in [json!("a string"), json!([1, 2, 3]), json!({"garbage": true}), json!({"version": "one"})] {
        let reply = invite(&mut hostile, peer, garbage.clone()).await;
        assert!(reply.is_err(), "{garbage} got an answer: {reply:?}");
    }
    // An invite-shaped message with bad contents is answered "unavailable".
    let bad = json!({"version": 1, "call_id": "00112233445566778899aabbccddeeff", "candidates": ["not-an-address"]});
    let reply = invite(&mut hostile, peer, bad).await.unwrap();
    assert_eq!(reply["reply"], "unavailable", "{reply}");
    let future = json!({"version": 9, "call_id": "00112233445566778899aabbccddeeff", "candidates": ["127.0.0.1:9"]});
    assert_eq!(invite(&mut hostile, peer, future).await.unwrap()["reply"], "unavailable");
    assert!(target.status().await["call"].is_null(), "nothing rang");

    // A well-formed invite from a stranger rings (unknown callers ring by default)...
    let call_id = CallId([0x5A; 16]);
    let good = json!({"version": 1, "call_id": call_id.to_string(), "candidates": ["127.0.0.1:9"], "video": false});
    let reply = invite(&mut hostile, peer, good).await.unwrap();
    assert_eq!(reply["reply"], "ringing", "{reply}");
    let quic: std::net::SocketAddr = reply["candidates"][0].as_str().unwrap().parse().unwrap();
    let status = target.status().await;
    assert_eq!(status["call"]["unknown"], true);

    // ...and a fourth invite within 10 s hits the per-peer rate limit (malformed invites spend no
    // budget; two more well-formed ones find the target busy with the first).
    for n in [0x5B, 0x5C] {
        let again = json!({"version": 1, "call_id": CallId([n; 16]).to_string(), "candidates": ["127.0.0.1:9"]});
        assert_eq!(invite(&mut hostile, peer, again).await.unwrap()["reply"], "busy");
    }
    let again = json!({"version": 1, "call_id": CallId([0x5D; 16]).to_string(), "candidates": ["127.0.0.1:9"]});
    let limited = invite(&mut hostile, peer, again).await.unwrap();
    assert_eq!(limited["reply"], "unavailable");
    assert!(limited["reason"].as_str().unwrap().contains("too many calls"), "{limited}");

    // QUIC garbage: a stream that is not a call stream, a stream for another call.
    let client = hail::transport::endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    for header in [&b"NOT A HAIL STREAM AT ALL"[..], &[b"HAIL".as_slice(), &[1], &[0xEE; 16]].concat()] {
        let conn = client.connect(quic, "hail").unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(header).await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("refused in time");
        assert!(matches!(closed, quinn::ConnectionError::ApplicationClosed(_)), "{closed:?}");
    }

    // The right call id, then a garbage Noise message: the call ends with a security error.
    let conn = client.connect(quic, "hail").unwrap().await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    write_header(&mut send, call_id).await.unwrap();
    write_frame(&mut send, &[0x42; 48]).await.unwrap();
    let mut ended = Value::Null;
    for _ in 0..500 {
        ended = target.status().await;
        if ended["call"]["end_reason"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ended["call"]["end_reason"]["kind"], "security", "{ended}");

    // The daemon is fine: a real call between the two members completes.
    let other = &members[1];
    other.ask(Command::ContactsAdd { name: "t".into(), contact: target.peer_id.clone() }).await.unwrap();
    target.ask(Command::ContactsAdd { name: "o".into(), contact: other.peer_id.clone() }).await.unwrap();
    let ringing = call(other, "t").await.expect("a normal call rings");
    assert_eq!(ringing["state"], "ringing");
    for _ in 0..500 {
        if target.status().await["call"]["sas_text"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    target
        .ask(Command::Answer { audio_in: None, audio_out: None, audio_processing: None, video_in: None, video_out: None })
        .await
        .expect("answer");
    for side in [target, other] {
        let mut state = Value::Null;
        for _ in 0..500 {
            state = side.status().await["call"]["state"].clone();
            if state == "active" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(state, "active", "the normal call connects on both sides");
    }
    other.ask(Command::Hangup).await.expect("hang up");
    for side in [target, other] {
        let mut ended = Value::Null;
        for _ in 0..500 {
            ended = side.status().await["call"].clone();
            if ended["end_reason"].is_object() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ended["end_reason"]["kind"], "hung_up", "ended by the hang-up, not an error: {ended}");
    }
    for m in members {
        m.daemon.stop().await;
    }
}

/// With unknown callers refused, a flood of invites from throw-away PeerIds is turned away before
/// it spends any budget: a contact's call still rings, and the refused calls leave one history
/// record per caller, not one per invite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throw_away_peer_ids_cannot_lock_a_contact_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = hail::node::DaemonOptions::loopback("silence", "null");
    options.calls.unknown_callers = Some(hail::node::UnknownCallers::Refuse);
    let target = hail::node::Daemon::start(hail::home::Home::new(dir.path().join("target")), options).await.unwrap();
    let target = cluster::Member { peer_id: target.peer_id().to_base58(), daemon: target, address: String::new() };
    let listen = loop {
        if let Some(a) = target.status().await["network"]["listen_addresses"][0].as_str() {
            break a.parse::<Multiaddr>().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let peer: PeerId = target.peer_id.parse().unwrap();

    // 40 strangers, each a fresh PeerId, one invite each; one of them tries three times.
    // The stranger who tries three times uses call ids starting with "ff".
    let invite_body = |n: u32, t: u32| {
        let id = format!("{:02x}{:030x}", if n == 0 { 0xff } else { 0 }, n * 10 + t);
        json!({"version": 1, "call_id": id, "candidates": ["127.0.0.1:9"], "video": false})
    };
    for n in 0..40u32 {
        let mut stranger = hostile_node();
        stranger.add_peer_address(peer, listen.clone());
        let tries = if n == 0 { 3 } else { 1 };
        for t in 0..tries {
            let reply = invite(&mut stranger, peer, invite_body(n, t)).await.unwrap();
            assert_eq!(reply["reply"], "rejected", "stranger {n}: {reply}");
        }
    }

    // A contact calls: it rings.
    let friend = cluster::start(dir.path(), "friend", "server", &[]).await;
    target.ask(Command::ContactsAdd { name: "friend".into(), contact: friend.peer_id.clone() }).await.unwrap();
    friend.ask(Command::ContactsAdd { name: "t".into(), contact: format!("{}", target.peer_id) }).await.unwrap();
    friend.ask(Command::DhtBootstrap { addresses: vec![format!("{listen}/p2p/{}", target.peer_id)] }).await.unwrap();
    let ringing = call(&friend, "t").await.expect("a contact's call rings after the flood");
    assert_eq!(ringing["state"], "ringing");
    friend.ask(Command::Hangup).await.expect("hang up");

    // Refused calls: at most one record per stranger (the one who tried three times has one).
    let history = target.ask(Command::History { limit: Some(1000) }).await.unwrap();
    let refused: Vec<&Value> =
        history.as_array().unwrap().iter().filter(|r| r["outcome"]["kind"] == "refused").collect();
    assert!(!refused.is_empty() && refused.len() <= 40, "{} refused records", refused.len());
    let first = refused.iter().filter(|r| r["call_id"].as_str().unwrap().starts_with("ff")).count();
    assert_eq!(first, 1, "three refused invites from one caller make one record");
    friend.daemon.stop().await;
    target.daemon.stop().await;
}
