//! A call's video (`CallMedia`) on a real QUIC connection after a real handshake, against a hostile
//! peer: streams with a wrong header, an absurd record length, tampered and replayed records, garbage
//! AV1, and more streams than allowed. Each is refused and counted; genuine video sent afterwards
//! still decodes; and a source that cannot be opened is reported without ending anything.

use std::time::{Duration, Instant};

use hail::call::CallId;
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::sender::{SenderConfig, VideoSender};
use hail::media::video::source::{VideoSinkSpec, VideoSourceSpec};
use hail::media::video::wire::{self, VideoFrame};
use hail::media::video::cpu_adaptation::VideoFormat;
use hail::media::config::{AudioConfig, VideoConfig};
use hail::media::driver::{CallMedia, MediaConfig};
use hail::media::io::{SinkSpec, SourceSpec};
use hail::media::stats::VideoStats;
#[path = "common/quic.rs"]
mod quic;


/// Bob's media: his video off, the peer's on, silent audio to nowhere.
fn receiving(video: VideoConfig) -> MediaConfig {
    let audio = AudioConfig { input: SourceSpec::Silence, output: SinkSpec::Null, ..Default::default() };
    MediaConfig { audio, video, muted: false, video_on: false, remote_video_on: true, ..Default::default() }
}

async fn wait(pipeline: &CallMedia, what: &str, pred: impl Fn(&VideoStats) -> bool) -> VideoStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pipeline.video_stats();
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "waited 10 s for {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_video_streams_are_refused_and_counted_and_genuine_video_still_decodes() {
    let call = CallId([0x78; 16]);
    let (_, a, b) = quic::channel_pair(call).await;

    // Bob receives (his own video is off; his source does not exist).
    let config = VideoConfig {
        input: VideoSourceSpec::File("/nonexistent/hail-camera.y4m".into()),
        output: VideoSinkSpec::Null,
        ..Default::default()
    };
    let (pipeline, mut control_rx) = quic::start_media(&b.conn, &b.established.frame_keys, receiving(config));

    // Alice, by hand: genuine records from a real encoder, and abuse.
    let small = SenderConfig { max_format: VideoFormat { width: 320, height: 180, fps: 30 }, ..Default::default() };
    let mut sender = VideoSender::new(&a.established.frame_keys, small);
    let t0 = Instant::now();
    let mut records = Vec::new();
    for n in 0..10u32 {
        let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
        records.extend(sender.send(t0 + Duration::from_millis(33 * u64::from(n)), &pic, 0).unwrap());
    }

    // 1. A stream that is not video.
    let mut s = a.conn.open_uni().await.unwrap();
    s.write_all(b"\x07hello, this is not video").await.unwrap();
    let _ = s.finish();
    // 2. A video stream announcing a 4 GiB record.
    let mut s = a.conn.open_uni().await.unwrap();
    s.write_all(&wire::stream_header(0)).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let _ = s.finish();
    // 3. GOP 0: the genuine keyframe, a tampered record, the keyframe again (a replay).
    let mut s = a.conn.open_uni().await.unwrap();
    s.write_all(&wire::stream_header(0)).await.unwrap();
    s.write_all(&records[0].record).await.unwrap();
    let mut tampered = records[1].record.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x40;
    s.write_all(&tampered).await.unwrap();
    s.write_all(&records[0].record).await.unwrap();
    let _ = s.finish();
    let st = wait(&pipeline, "the abuse counted", |s| s.receive.tampered >= 1 && s.receive.replayed >= 1).await;
    assert_eq!((st.receive.tampered, st.receive.replayed), (1, 1), "{st:?}");
    assert_eq!(st.receive.frames_decoded, 1, "the genuine keyframe decoded: {st:?}");

    // 4. Garbage AV1 that authenticates (sealed with the real key) on a new GOP.
    let mut sealer = a.established.frame_keys.sealer(hail::crypto::frame::MediaKind::Video);
    for _ in 0..100 {
        sealer.seal(b"", b""); // move past the counters the genuine sender used
    }
    let junk = VideoFrame { frame: 0, capture_us: 0, flags: wire::FLAG_KEYFRAME, width: 320, height: 180, av1: vec![0xff; 500] };
    let mut s = a.conn.open_uni().await.unwrap();
    s.write_all(&wire::stream_header(1)).await.unwrap();
    s.write_all(&wire::seal(&mut sealer, 1, &junk)).await.unwrap();
    let _ = s.finish();
    let st = wait(&pipeline, "the decode error", |s| s.receive.decode_errors >= 1).await;
    assert_eq!(st.receive.decode_errors, 1);
    // The receiver asks (over the control stream) for a keyframe.
    let request = tokio::time::timeout(Duration::from_secs(5), control_rx.recv()).await.unwrap().unwrap();
    assert!(format!("{request:?}").contains("KeyframeRequest"), "{request:?}");

    // Genuine video again: a new GOP from the real sender decodes.
    sender.on_keyframe_request(t0 + Duration::from_secs(5));
    let mut fresh = Vec::new();
    for n in 10..20u32 {
        let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
        fresh.extend(sender.send(t0 + Duration::from_secs(5) + Duration::from_millis(33 * u64::from(n)), &pic, 0).unwrap());
    }
    assert!(fresh[0].new_gop);
    // First on a stream that names another GOP: the GOP is authenticated, every record fails.
    let mut s = a.conn.open_uni().await.unwrap();
    s.write_all(&wire::stream_header(fresh[0].gop + 5)).await.unwrap();
    for r in &fresh {
        s.write_all(&r.record).await.unwrap();
    }
    let _ = s.finish();
    let st = wait(&pipeline, "records moved to another GOP", |s| s.receive.tampered >= 11).await;
    assert_eq!(st.receive.frames_decoded, 1, "{st:?}");
    let mut s = a.conn.open_uni().await.unwrap();
    s.write_all(&wire::stream_header(fresh[0].gop)).await.unwrap();
    for r in &fresh {
        s.write_all(&r.record).await.unwrap();
    }
    let _ = s.finish();
    let st = wait(&pipeline, "the genuine GOP", |s| s.receive.frames_decoded >= 11).await;
    assert_eq!(st.receive.frames_decoded, 11, "{st:?}");
    assert!(st.receive.frames_rendered >= 1);

    // 5. More streams at once than a receiver reads (4): held open, never finished. The ones
    // beyond the limit are stopped by the receiver at once.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = a.conn.open_uni().await.unwrap();
        s.write_all(&wire::stream_header(2)).await.unwrap();
        held.push(s);
    }
    let stopped = futures::future::join_all(
        held.iter_mut().map(|s| tokio::time::timeout(Duration::from_secs(3), s.stopped())),
    )
    .await
    .into_iter()
    .filter(|r| r.is_ok())
    .count();
    assert_eq!(stopped, 4, "the streams beyond the four read at once are refused");
    drop(held);

    // Bob's own video: switched on, the missing source is reported; nothing is sent, nothing ends.
    pipeline.set_video(true);
    let st = wait(&pipeline, "the source error", |s| s.input_error.is_some()).await;
    assert!(st.input_error.unwrap().contains("hail-camera.y4m"));
    assert_eq!(st.send.frames, 0);
    assert!(b.conn.close_reason().is_none(), "the connection is still up");
    drop(pipeline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_record_length_buffers_only_what_arrives_and_the_video_goes_on() {
    use hail::media::stats::MAX_BUFFERED;
    let call = CallId([0x79; 16]);
    let (_, a, b) = quic::channel_pair(call).await;
    let video = VideoConfig { input: VideoSourceSpec::Pattern, output: VideoSinkSpec::Null, ..Default::default() };
    let (pipeline, _control_rx) = quic::start_media(&b.conn, &b.established.frame_keys, receiving(video));

    // Three streams each announce the largest record allowed and send 1000 bytes of it, then hold:
    // the receiver buffers what arrived, not what was announced (3 × 2 MiB).
    let mut held = Vec::new();
    for gop in 0..3u32 {
        let mut s = a.conn.open_uni().await.unwrap();
        s.write_all(&wire::stream_header(gop)).await.unwrap();
        s.write_all(&(wire::MAX_RECORD as u32).to_be_bytes()).await.unwrap();
        s.write_all(&[0x5a; 1000]).await.unwrap();
        held.push(s);
    }
    let st = wait(&pipeline, "the announced records' first bytes", |s| s.receive_buffered_bytes >= 3000).await;
    assert!(
        st.receive_buffered_bytes <= 3 * 8192,
        "buffered {} bytes for 3000 that arrived",
        st.receive_buffered_bytes
    );

    // Genuine video on the fourth stream still decodes beside them.
    let small = SenderConfig { max_format: VideoFormat { width: 320, height: 180, fps: 30 }, ..Default::default() };
    let mut sender = VideoSender::new(&a.established.frame_keys, small);
    let t0 = Instant::now();
    let mut records = Vec::new();
    for n in 0..5u32 {
        let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
        records.extend(sender.send(t0 + Duration::from_millis(33 * u64::from(n)), &pic, 0).unwrap());
    }
    let mut s = a.conn.open_uni().await.unwrap();
    s.write_all(&wire::stream_header(records[0].gop)).await.unwrap();
    for r in &records {
        s.write_all(&r.record).await.unwrap();
    }
    let _ = s.finish();
    let st = wait(&pipeline, "the genuine GOP", |s| s.receive.frames_decoded >= 5).await;
    assert_eq!(st.receive.frames_decoded, 5, "{st:?}");

    // The hostile streams end (reset); what they held is given back.
    for mut s in held {
        let _ = s.reset(0u32.into());
    }
    let st = wait(&pipeline, "the held bytes given back", |s| s.receive_buffered_bytes == 0).await;
    assert!(st.receive_buffered_bytes as usize <= MAX_BUFFERED);
    assert!(b.conn.close_reason().is_none(), "the connection is still up");
}
