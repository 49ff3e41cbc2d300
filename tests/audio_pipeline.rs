//! A call's audio (`CallMedia`) on a real QUIC connection after a real handshake: replayed and
//! tampered datagrams are refused and counted, audio keeps flowing, and a missing microphone leaves
//! the other direction working.

use std::time::Duration;

use bytes::Bytes;
use hail::call::CallId;
use hail::media::audio::AudioSender;
use hail::media::codec::opus::{DEFAULT_BITRATE, FRAME_SAMPLES, OpusEncoder};
use hail::media::io::{SinkSpec, SourceSpec};
use hail::media::config::AudioConfig;
use hail::media::driver::MediaConfig;
#[path = "common/quic.rs"]
mod quic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_forgeries_are_counted_and_dropped_and_a_missing_microphone_is_reported() {
    let call = CallId([0x77; 16]);
    let (_, a, b) = quic::channel_pair(call).await;

    // Bob: no such microphone, audio to nowhere.
    let config = AudioConfig {
        input: SourceSpec::Device("no microphone is called this 9c1e".into()),
        output: SinkSpec::Null,
        bitrate: DEFAULT_BITRATE,
        ..Default::default()
    };
    let (pipeline, _control) =
        quic::start_media(&b.conn, &b.established.frame_keys, MediaConfig { audio: config, ..Default::default() });

    // Alice sends 100 frames by hand; 10 of them twice, and 4 forged copies.
    let mut sender = AudioSender::new(&a.established.frame_keys, DEFAULT_BITRATE);
    let mut encoder = OpusEncoder::new(DEFAULT_BITRATE).unwrap();
    let tone = [3000i16; FRAME_SAMPLES];
    let (mut replays, mut forgeries) = (0, 0);
    for i in 0..100u32 {
        let job = sender.begin(&tone, 0);
        let d = sender.finish(&job, job.encode_with(&mut encoder).unwrap());
        a.conn.send_datagram(Bytes::from(d.clone())).unwrap();
        if i % 10 == 5 {
            a.conn.send_datagram(Bytes::from(d.clone())).unwrap();
            replays += 1;
        }
        if i % 25 == 7 {
            // A counter far ahead (so the window lets it through to the tag check), same bytes.
            let mut forged = d.clone();
            forged[2] ^= 0x10;
            a.conn.send_datagram(Bytes::from(forged)).unwrap();
            forgeries += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stats refresh once a second.
    let mut stats = pipeline.audio_stats();
    for _ in 0..40 {
        stats = pipeline.audio_stats();
        if stats.receive.packets >= 114 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats.receive.replayed, replays, "{stats:?}");
    assert_eq!(stats.receive.tampered, forgeries, "{stats:?}");
    assert!(stats.receive.jitter.received >= 95, "the genuine frames played: {stats:?}");
    let err = stats.input_error.clone().expect("the missing microphone is reported");
    assert!(err.contains("no such device"), "{err}");
    assert_eq!(stats.send.packets, 0, "no microphone: nothing sent, the call goes on");
    drop(pipeline);
}
