//! A call's QUIC connection survives its peer's address changing mid-call (connection migration:
//! a NAT rebinding, a laptop moving from Wi-Fi to cable): the side that dialed moves to a new UDP
//! socket, and audio keeps flowing both ways on the same connection.

use std::time::{Duration, Instant};

use hail::call::CallId;
use hail::media::io::{SinkSpec, SourceSpec};
use hail::media::config::AudioConfig;
use hail::media::driver::{CallMedia, MediaConfig};
#[path = "common/quic.rs"]
mod quic;


fn config() -> MediaConfig {
    let audio = AudioConfig { input: SourceSpec::Tone(440.0), output: SinkSpec::Null, bitrate: 32_000, ..Default::default() };
    MediaConfig { audio, ..Default::default() }
}

async fn received(p: &CallMedia) -> u64 {
    p.audio_stats().receive.jitter.received
}

async fn grows(p: &CallMedia, by: u64, what: &str) {
    let start = received(p).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(p).await < start + by {
        assert!(Instant::now() < deadline, "{what}: stuck at {} frames", received(p).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_keeps_flowing_when_the_dialing_side_moves_to_a_new_address() {
    let call = CallId([0x79; 16]);
    let (ep_a, a, b) = quic::channel_pair(call).await;
    let (pa, _ca) = quic::start_media(&a.conn, &a.established.frame_keys, config());
    let (pb, _cb) = quic::start_media(&b.conn, &b.established.frame_keys, config());
    grows(&pb, 50, "before the move, bob hears alice").await;
    grows(&pa, 50, "before the move, alice hears bob").await;

    let before = b.conn.remote_address();
    ep_a.rebind(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    let moved_to = ep_a.local_addr().unwrap();
    assert_ne!(before.port(), moved_to.port());
    grows(&pb, 100, "after the move, bob hears alice").await;
    grows(&pa, 100, "after the move, alice hears bob").await;
    assert_eq!(b.conn.remote_address(), moved_to, "bob follows alice to her new address");
    assert!(a.conn.close_reason().is_none() && b.conn.close_reason().is_none(), "the same connection");
    drop((pa, pb));
}
