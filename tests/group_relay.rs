//! A relay-only peer cannot read a group call (issue 13): the media relay (`src/relay.rs`, the one
//! 1:1 calls and group legs use when a member is behind a symmetric NAT) carries a group leg —
//! a real QUIC connection between two members through a real allocation — while both members send
//! sealed group frames on it. Everything the relay forwards is captured on its way out: the
//! plaintext never appears in it, and not one captured packet, at any offset, opens as a group
//! frame even with every key the members hold (the relay holds none). The members still hear each
//! other through it.

#[path = "common/group_net.rs"]
mod group_net;
#[path = "common/quic.rs"]
mod quic;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use group_net::{Net, peer};
use hail::call::CallId;
use hail::crypto::sender_key::GroupMedia;
use hail::media_link::MediaLink;
use hail::relay::{MediaRelay, RelayLimits, RelayRequest, RelayResponse};
use hail::transport::channel::dial;
use hail::transport::media_port::QuicMediaPort;
use tokio::net::UdpSocket;

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// What the members say, recognisable anywhere in a capture.
const SECRET: &[u8] = b"group secret: the plaintext a relay must never see";

/// Everything the relay sent out of its two sides.
type Capture = Arc<Mutex<Vec<Vec<u8>>>>;

/// A UDP hop between a member's QUIC endpoint and its side of the allocation, recording what
/// comes from the relay. It speaks first to `side` (so the relay locks that side to it), then
/// passes packets both ways: from the relay to the member (learned from its first packet, or
/// `member` when given), from the member to `side`.
async fn tap(side: SocketAddr, member: Option<SocketAddr>, capture: Capture) -> SocketAddr {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    socket.send_to(b"open", side).await.unwrap();
    tokio::spawn(async move {
        let mut member = member;
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
            if from == side {
                capture.lock().unwrap().push(buf[..n].to_vec());
                if let Some(m) = member {
                    let _ = socket.send_to(&buf[..n], m).await;
                }
            } else {
                member = Some(from);
                let _ = socket.send_to(&buf[..n], side).await;
            }
        }
    });
    addr
}

fn sides(r: RelayResponse) -> SocketAddr {
    match r {
        RelayResponse::Ok { mine, .. } => mine.parse().unwrap(),
        RelayResponse::Err { reason } => panic!("refused: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_relay_carrying_a_group_leg_sees_only_ciphertext() {
    // Two members of a group call, with their keys (the real group core).
    let (p1, p2) = (peer(1), peer(2));
    let mut net = Net::group(1, &[2, 3]);
    // The relay: an allocation for the leg between members 1 and 2.
    let mut relay = MediaRelay::new(LOCAL, RelayLimits::default());
    let call = CallId([0x61; 16]);
    let side_1 = sides(relay.handle(p1, Some(LOCAL), RelayRequest::Allocate { call_id: call, peer: p2.to_string() }));
    let side_2 = sides(relay.handle(p2, Some(LOCAL), RelayRequest::Join { call_id: call }));
    let capture: Capture = Arc::default();
    let (ep1, _, _rx1) = quic::node();
    let (_ep2, addr2, mut rx2) = quic::node();
    // Member 2's side is opened first (as a callee's would be), then member 1 dials its own side.
    let _tap2 = tap(side_2, Some(addr2), capture.clone()).await;
    let tap1 = tap(side_1, None, capture.clone()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let leg = dial(&ep1, tap1, call).await.expect("a QUIC connection through the relay");
    let theirs = rx2.recv().await.expect("member 2 accepts the leg");
    let (link1, link2) = (QuicMediaPort::new(leg.conn), QuicMediaPort::new(theirs.conn));

    // Both members send sealed group frames on the leg; each opens the other's.
    let mut heard = [0usize; 2];
    for n in 0..40u8 {
        let payload = [SECRET, &[n]].concat();
        for (i, (from, link, other, other_link)) in
            [(p1, &link1, p2, &link2), (p2, &link2, p1, &link1)].into_iter().enumerate()
        {
            let frame = net.member(&from).seal(GroupMedia::Audio, &payload).unwrap();
            link.send_datagram(Bytes::from(frame)).unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), other_link.read_datagram()).await;
            if let Ok(Ok(datagram)) = got {
                assert_eq!(net.member(&other).open(&from, &datagram).unwrap().payload, payload);
                heard[i] += 1;
            }
        }
    }
    assert!(heard.iter().all(|h| *h >= 30), "the members hear each other through the relay: {heard:?}");

    // What the relay forwarded: the datagrams, and more (QUIC's handshake, acknowledgements).
    let captured = capture.lock().unwrap().clone();
    assert!(captured.len() >= 80, "the relay carried the leg: {} packets", captured.len());
    // Not one byte string of the plaintext, nor its first 16 bytes anywhere.
    for packet in &captured {
        assert!(!packet.windows(16).any(|w| w == &SECRET[..16]), "plaintext through the relay");
    }
    // Every key of the call (member 3 was sent both members' keys): nothing the relay carried
    // opens as a group frame, at any offset. The relay itself holds no key at all.
    let mut keys = net.captured_keys(&peer(3));
    let mut opened = 0;
    for packet in &captured {
        for offset in 0..packet.len() {
            if keys.open(&packet[offset..]).is_ok() {
                opened += 1;
            }
        }
    }
    assert_eq!(opened, 0, "a captured packet opened as a group frame");
    // The same keys do open the members' frames (the check above could have found one).
    let frame = net.member(&p1).seal(GroupMedia::Audio, SECRET).unwrap();
    assert_eq!(keys.open(&frame).unwrap().payload, SECRET);
    let _ = &mut relay;
}
