//! Two ends of a call's secure channel on real QUIC endpoints, without daemons.
#![allow(dead_code)]

use hail::call::CallId;
use hail::crypto::handshake::HandshakeParams;
use hail::identity::Identity;
use hail::transport::channel::{CallStream, accept_call_stream};
use hail::transport::endpoint;
use libp2p_identity::PeerId;
use tokio::sync::mpsc;

/// Handshake parameters for `id` in `call`, pinning `expected` (or nobody).
pub fn params(id: &Identity, call: CallId, expected: Option<PeerId>) -> HandshakeParams {
    HandshakeParams {
        static_secret: id.noise_static_secret(),
        binding: id.noise_binding(),
        call_id: call.0,
        tls_exporter: [0; 32],
        expected_peer: expected,
        fixed_ephemeral: None,
    }
}

/// An endpoint on loopback whose accepted call streams come out of the returned receiver.
pub fn node() -> (quinn::Endpoint, std::net::SocketAddr, mpsc::Receiver<CallStream>) {
    let ep = endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(8);
    let accepting = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(Some((_, stream))) = accept_call_stream(incoming).await {
                    let _ = tx.send(stream).await;
                }
            });
        }
    });
    (ep, addr, rx)
}

/// No media relay path (the channel is closed at once).
pub fn no_relay() -> mpsc::Receiver<std::net::SocketAddr> {
    mpsc::channel(1).1
}

/// A secure channel between "alice" (seed 1, the caller, who dials) and "bob" (seed 2) for `call`,
/// unpinned: alice's endpoint (she dialed, so she can move) and both ends.
pub async fn channel_pair(
    call: CallId,
) -> (quinn::Endpoint, hail::transport::channel::SecureChannel, hail::transport::channel::SecureChannel) {
    use hail::call::Role;
    use hail::transport::channel::establish;
    let (alice, bob) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
    let (ep_a, _, in_a) = node();
    let (ep_b, addr_b, in_b) = node();
    let b = tokio::spawn(establish(ep_b, Role::Callee, call, vec![], params(&bob, call, None), in_b, no_relay()));
    let a = establish(ep_a.clone(), Role::Caller, call, vec![addr_b], params(&alice, call, None), in_a, no_relay())
        .await
        .unwrap();
    (ep_a, a, b.await.unwrap().unwrap())
}

/// A call's media on `conn`, as the node starts it (`config` and a control channel whose
/// receiver is returned: what the media asks of the peer arrives there).
pub fn start_media(
    conn: &quinn::Connection,
    keys: &hail::crypto::frame::FrameKeys,
    config: hail::media::driver::MediaConfig,
) -> (hail::media::driver::CallMedia, mpsc::Receiver<hail::media::session::MediaControl>) {
    let (control, requests) = mpsc::channel(32);
    let link = std::sync::Arc::new(hail::transport::media_port::QuicMediaPort::new(conn.clone()));
    (hail::media::driver::CallMedia::start(link, keys, config, control).unwrap(), requests)
}
