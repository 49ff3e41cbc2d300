//! A man in the middle on real QUIC connections: it terminates each side with its own keys. With
//! the callee's key pinned the caller refuses it; without pinning both legs complete, but the two
//! sides' emoji differ, which is what the users compare.

use std::time::Duration;

use hail::call::{CallId, Role};
use hail::crypto::handshake::HandshakeError;
use hail::identity::Identity;
use hail::transport::channel::{ChannelError, SecureChannel, establish};
use tokio::sync::mpsc;

#[path = "common/quic.rs"]
mod quic;
use quic::{node, params};

async fn bounded(
    f: impl std::future::Future<Output = Result<SecureChannel, ChannelError>>,
) -> Result<SecureChannel, ChannelError> {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("handshake finished within 10 s")
}

/// Alice calls Bob, but her packets reach Mallory, who calls Bob himself.
async fn attack(pin_bob: bool) -> (Result<SecureChannel, ChannelError>, Result<SecureChannel, ChannelError>, Identity) {
    let (alice, bob, mallory) =
        (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]), Identity::from_seed([6; 32]));
    let call = CallId([0xCA; 16]);
    let (ep_a, _, in_a) = node();
    let (ep_b, addr_b, in_b) = node();
    let (ep_m, addr_m, in_m) = node();

    // Bob answers anyone (unknown callers allowed): that is the weakest setting.
    let bob_side =
        tokio::spawn(establish(ep_b, Role::Callee, call, vec![], params(&bob, call, None), in_b, quic::no_relay()));
    // Mallory: responder towards Alice, caller towards Bob, each with Mallory's own key.
    let m_to_alice = tokio::spawn(establish(
        ep_m.clone(),
        Role::Callee,
        call,
        vec![],
        params(&mallory, call, None),
        in_m,
        quic::no_relay(),
    ));
    let (_none_tx, none_rx) = mpsc::channel(1);
    let m_to_bob = tokio::spawn(establish(
        ep_m,
        Role::Caller,
        call,
        vec![addr_b],
        params(&mallory, call, None),
        none_rx,
        quic::no_relay(),
    ));
    // Alice dials "Bob" and reaches Mallory.
    let expected = pin_bob.then(|| bob.peer_id());
    let alice_side = bounded(establish(
        ep_a,
        Role::Caller,
        call,
        vec![addr_m],
        params(&alice, call, expected),
        in_a,
        quic::no_relay(),
    ))
    .await;

    let bob_result = bounded(async { bob_side.await.unwrap() }).await;
    let _ = m_to_bob.await;
    m_to_alice.abort();
    (alice_side, bob_result, mallory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_callee_key_exposes_the_man_in_the_middle() {
    let (alice, _bob, mallory) = attack(true).await;
    match alice {
        Err(ChannelError::Security(e)) => match *e {
            HandshakeError::WrongPeer { expected, actual } => {
                assert_eq!(expected, Identity::from_seed([2; 32]).peer_id());
                assert_eq!(actual, mallory.peer_id());
            }
            other => panic!("wrong security error: {other:?}"),
        },
        other => panic!("Alice accepted the man in the middle: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pinning_the_two_sides_see_different_emoji() {
    let (alice, bob, mallory) = attack(false).await;
    let (alice, bob) = (alice.expect("leg 1 completes"), bob.expect("leg 2 completes"));
    assert_eq!(alice.established.remote_peer, mallory.peer_id());
    assert_eq!(bob.established.remote_peer, mallory.peer_id());
    assert_ne!(alice.established.sas, bob.established.sas, "the emoji differ: comparing them reveals the attack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_call_agrees_on_the_emoji_and_garbage_streams_are_refused() {
    let (alice, bob) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
    let call = CallId([0x11; 16]);
    let (ep_a, _, in_a) = node();
    let (ep_b, addr_b, in_b) = node();

    // Garbage first: a connection whose stream header is nonsense is refused, Bob keeps serving.
    let conn = ep_a.connect(addr_b, "hail").unwrap().await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(b"GARBAGE GARBAGE GARBAGE").await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("refused in time");
    assert!(matches!(closed, quinn::ConnectionError::ApplicationClosed(_)), "{closed:?}");

    let b = tokio::spawn(establish(
        ep_b,
        Role::Callee,
        call,
        vec![],
        params(&bob, call, Some(alice.peer_id())),
        in_b,
        quic::no_relay(),
    ));
    let a = bounded(establish(
        ep_a,
        Role::Caller,
        call,
        vec![addr_b],
        params(&alice, call, Some(bob.peer_id())),
        in_a,
        quic::no_relay(),
    ))
    .await
    .unwrap();
    let b = bounded(async { b.await.unwrap() }).await.unwrap();
    assert_eq!(a.established.sas, b.established.sas);
    assert_eq!(a.established.remote_peer, bob.peer_id());
    assert_eq!(b.established.remote_peer, alice.peer_id());
}

/// Mallory knows the call id (a man in the middle on the signalling path would) and opens many
/// connections to the callee, each with its own message 1. Each message 2 would show him one more
/// SAS to match against the caller's, so the callee answers one message 1 per call, and a second one
/// ends the call as a security event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_handshakes_for_one_call_get_at_most_one_message_2() {
    use hail::crypto::handshake::Initiator;
    let (alice, bob, mallory) =
        (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]), Identity::from_seed([6; 32]));
    let call = CallId([0x5A; 16]);
    let (ep_b, addr_b, in_b) = node();
    let (ep_m, _, _in_m) = node();
    let bob_side = tokio::spawn(establish(
        ep_b,
        Role::Callee,
        call,
        vec![],
        params(&bob, call, Some(alice.peer_id())),
        in_b,
        quic::no_relay(),
    ));

    let mut tries = tokio::task::JoinSet::new();
    for i in 0..50u8 {
        let (ep_m, mallory) = (ep_m.clone(), mallory.clone());
        tries.spawn(async move {
            // Mallory keeps every connection open until the end: a message 2 he got stays pending.
            let Ok(mut stream) = hail::transport::channel::dial(&ep_m, addr_b, call).await else { return (false, None) };
            let (_, msg1) = Initiator::start(params(&mallory, call, None), [i; 32]).unwrap();
            if hail::transport::channel::write_frame(&mut stream.send, &msg1).await.is_err() {
                return (false, Some(stream));
            }
            let read = hail::transport::channel::read_frame(&mut stream.recv, 65535);
            (matches!(tokio::time::timeout(Duration::from_secs(20), read).await, Ok(Ok(_))), Some(stream))
        });
    }
    let (mut message_2s, mut held) = (0, Vec::new());
    while let Some(got) = tries.join_next().await {
        let (got, stream) = got.unwrap();
        message_2s += usize::from(got);
        held.push(stream);
    }
    assert!(message_2s <= 1, "Mallory read {message_2s} message 2s for one call");

    let bob_result = bounded(async { bob_side.await.unwrap() }).await;
    match bob_result {
        Err(e @ ChannelError::SecondHandshake) => assert!(e.is_security(), "shown to the user as a security event"),
        other => panic!("the call survived 50 handshakes: {other:?}"),
    }
    drop(held);
}

#[test]
fn one_message_1_per_call_in_either_role() {
    let mut slot = hail::transport::channel::HandshakeSlot::default();
    assert!(!slot.started());
    assert!(slot.message_1().is_ok());
    assert!(slot.started());
    assert_eq!(slot.message_1(), Err(ChannelError::SecondHandshake));
    assert_eq!(slot.message_1(), Err(ChannelError::SecondHandshake), "and every one after it");
}
