//! The call endpoint under a flood of QUIC Initials from spoofed source ports: real quinn endpoints
//! and real UDP sockets on loopback. A spoofed source never completes a handshake, so before the
//! accept budget (`src/transport/accept.rs`) it held an accept slot until QUIC gave up (20 s), and 16
//! of them locked every caller out.

use std::net::SocketAddr;
use std::time::Duration;

use hail::call::CallId;
use hail::transport::accept::{AcceptLimits, accept_calls};
use hail::transport::channel::{CallStream, dial};
use hail::transport::endpoint;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// `n` distinct client Initials (each its own connection id), captured on a socket that never
/// answers.
async fn capture_initials(n: usize) -> Vec<Vec<u8>> {
    let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let client = endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut pending = Vec::new();
    for _ in 0..n {
        pending.push(client.connect(sink_addr, "hail").unwrap());
    }
    let mut initials = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; 2048];
    while initials.len() < n {
        let (len, _) = tokio::time::timeout(Duration::from_secs(10), sink.recv_from(&mut buf))
            .await
            .expect("the client sends its Initials")
            .unwrap();
        // A long-header packet: byte 5 is the DCID length, the DCID follows.
        let dcid = buf[6..6 + buf[5] as usize].to_vec();
        if seen.insert(dcid) {
            initials.push(buf[..len].to_vec());
        }
    }
    drop(pending);
    client.close(0u32.into(), b"");
    initials
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_initials_do_not_lock_a_caller_out() {
    let server = endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server_addr: SocketAddr = server.local_addr().unwrap();
    let (tx, mut calls) = mpsc::channel::<(CallId, CallStream)>(8);
    let wrap: fn(CallId, CallStream) -> (CallId, CallStream) = |id, s| (id, s);
    tokio::spawn(accept_calls(server.clone(), AcceptLimits::default(), tx, wrap));

    // 64 Initials, each from its own port, none of which will ever answer the server.
    let initials = capture_initials(64).await;
    let mut spoofers = Vec::new();
    for initial in &initials {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(initial, server_addr).await.unwrap();
        spoofers.push(socket);
    }
    // Let the server take them all in before the real caller arrives.
    let mut answered = 0;
    let mut buf = vec![0u8; 2048];
    for s in &spoofers {
        if tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf)).await.is_ok() {
            answered += 1;
        }
    }
    assert_eq!(answered, spoofers.len(), "every spoofed Initial got an answer (a handshake or a Retry)");

    // A real caller still gets in, and its call stream arrives.
    let client = endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let call = CallId([0x77; 16]);
    let stream = tokio::time::timeout(Duration::from_secs(10), dial(&client, server_addr, call))
        .await
        .expect("dial finishes")
        .expect("the caller is accepted during the flood");
    let (got, _) = tokio::time::timeout(Duration::from_secs(10), calls.recv()).await.expect("delivered").unwrap();
    assert_eq!(got, call);
    drop(stream);
}
