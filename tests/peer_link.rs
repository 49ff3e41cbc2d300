//! A `PeerLink` on real QUIC endpoints, without daemons: two links come up with the same emoji and
//! carry control frames both ways; closing is graceful once up and immediate during setup; a setup
//! that nothing answers fails within its time limit. The owner spawns each driver itself.

use std::time::Duration;

use hail::call::CallId;
use hail::crypto::handshake::HandshakeRole;
use hail::identity::Identity;
use hail::transport::channel::ChannelError;
use hail::transport::link::{LinkEvent, LinkInbox, LinkSetup, PeerLink};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[path = "common/quic.rs"]
mod quic;

type Events = mpsc::Receiver<(CallId, LinkEvent)>;

/// A link from `id` for `call`, its events, and its spawned driver.
fn link(
    endpoint: quinn::Endpoint,
    id: &Identity,
    role: HandshakeRole,
    call: CallId,
    candidates: Vec<std::net::SocketAddr>,
    time_limit: Duration,
    inbox: LinkInbox,
) -> (PeerLink, Events, JoinHandle<()>) {
    let setup =
        LinkSetup { endpoint, role, call_id: call, candidates, params: quic::params(id, call, None), time_limit };
    let (tx, rx) = mpsc::channel(16);
    let (link, driver) = PeerLink::connect(setup, inbox, tx, |call, event| (call, event));
    (link, rx, tokio::spawn(driver))
}

async fn next(events: &mut Events, what: &str) -> LinkEvent {
    let (_, event) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
        .unwrap_or_else(|| panic!("{what}: the driver ended without it"));
    event
}

/// Alice (the caller, who dials) and Bob (who takes the streams his endpoint accepts), both up.
async fn pair(call: CallId) -> ((PeerLink, Events, JoinHandle<()>), (PeerLink, Events, JoinHandle<()>)) {
    let (alice, bob) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
    let (ep_a, _, _) = quic::node();
    let (ep_b, addr_b, mut accepted) = quic::node();
    let bob_inbox = LinkInbox::default();
    let feed = bob_inbox.setup_feed().clone();
    tokio::spawn(async move {
        while let Some(stream) = accepted.recv().await {
            feed.offer_stream(stream);
        }
    });
    let limit = Duration::from_secs(10);
    let mut b = link(ep_b, &bob, HandshakeRole::Responder, call, vec![], limit, bob_inbox);
    let mut a = link(ep_a, &alice, HandshakeRole::Initiator, call, vec![addr_b], limit, LinkInbox::default());
    let (LinkEvent::Up(up_a), LinkEvent::Up(up_b)) = (next(&mut a.1, "alice up").await, next(&mut b.1, "bob up").await)
    else {
        panic!("both links come up")
    };
    assert_eq!(up_a.sas, up_b.sas, "both sides show the same emoji");
    assert_eq!((up_a.remote_peer, up_b.remote_peer), (bob.peer_id(), alice.peer_id()));
    assert_eq!(a.0.remote_address(), Some(addr_b));
    assert!(a.0.connection().is_some() && b.0.connection().is_some(), "media can reach the connection");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_links_carry_control_frames_both_ways_and_a_close_delivers_what_was_queued() {
    let call = CallId([0x11; 16]);
    let ((alice, mut alice_events, alice_driver), (bob, mut bob_events, bob_driver)) = pair(call).await;

    alice.send_control(b"ping".to_vec()).unwrap();
    assert!(matches!(next(&mut bob_events, "bob hears alice").await, LinkEvent::Control(b) if b == b"ping"));
    bob.send_control(b"pong".to_vec()).unwrap();
    assert!(matches!(next(&mut alice_events, "alice hears bob").await, LinkEvent::Control(b) if b == b"pong"));

    // The last words go out before the close (a hangup, then the channel closes).
    alice.send_control(b"bye".to_vec()).unwrap();
    alice.close();
    assert!(matches!(next(&mut bob_events, "bob hears the last words").await, LinkEvent::Control(b) if b == b"bye"));
    assert!(matches!(next(&mut bob_events, "bob sees alice's side end").await, LinkEvent::Closed(_)));
    bob.close();
    for (driver, who) in [(alice_driver, "alice"), (bob_driver, "bob")] {
        tokio::time::timeout(Duration::from_secs(5), driver)
            .await
            .unwrap_or_else(|_| panic!("{who}'s driver ends after the close"))
            .unwrap();
    }
}

/// A caller's link whose one candidate is a UDP port that takes packets and never answers (the
/// socket is returned to keep the port).
fn link_to_silence(call: CallId, time_limit: Duration) -> (PeerLink, Events, JoinHandle<()>, std::net::UdpSocket) {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ep, _, _) = quic::node();
    let me = Identity::from_seed([1; 32]);
    let candidates = vec![silent.local_addr().unwrap()];
    let (link, events, driver) =
        link(ep, &me, HandshakeRole::Initiator, call, candidates, time_limit, LinkInbox::default());
    (link, events, driver, silent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_link_during_setup_ends_its_driver_at_once_without_a_word() {
    let (link, mut events, driver, _silent) = link_to_silence(CallId([0x12; 16]), Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A forwarder may still hold a sender: the close does not wait for it.
    let _forwarder = link.control_sender();
    link.close();
    tokio::time::timeout(Duration::from_secs(1), driver).await.expect("the driver ends at once").unwrap();
    assert!(events.recv().await.is_none(), "a link closed during setup reports nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_that_nothing_answers_fails_within_its_time_limit() {
    let (_link, mut events, driver, _silent) = link_to_silence(CallId([0x13; 16]), Duration::from_millis(500));
    match next(&mut events, "the setup's end").await {
        LinkEvent::Failed(ChannelError::Network(reason)) => assert!(reason.contains("in time"), "{reason}"),
        other => panic!("expected a network failure, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(1), driver).await.expect("the driver ends after failing").unwrap();
}
