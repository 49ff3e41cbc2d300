//! The fuzzers' side of the test suite (docs/security.md), on stable:
//! - every input a fuzz target (fuzz/) ever crashed on, replayed against the decoder it broke;
//! - the fuzz seeds (fuzz/seeds/TARGET/), which must stay what protocols/vectors give, so a changed
//!   wire format changes them too. `HAIL_FUZZ_WRITE_SEEDS=1 cargo test --test fuzz_regressions`
//!   rewrites them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use data_encoding::HEXLOWER_PERMISSIVE as HEX;
use hail::identity::Identity;
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/vectors").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    HEX.decode(v.as_str().expect("a hex string").as_bytes()).expect("hex")
}

fn text(v: &Value) -> Vec<u8> {
    v.as_str().expect("a string").as_bytes().to_vec()
}

fn items(v: &Value) -> &Vec<Value> {
    v.as_array().expect("an array")
}

fn binding(seed: u8) -> Vec<u8> {
    let b = Identity::from_seed([seed; 32]).noise_binding();
    let mut out = Vec::new();
    for part in [&b.identity_public, &b.signature] {
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn wav(spec: hound::WavSpec, samples: &[i32]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for s in samples {
        if spec.sample_format == hound::SampleFormat::Float {
            w.write_sample(*s as f32 / 1000.0).unwrap();
        } else {
            w.write_sample(*s).unwrap();
        }
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// Every seed: target → file name → bytes (the targets' input layouts are in fuzz/fuzz_targets/).
fn seeds() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
    let mut all: BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut add = |target: &'static str, name: String, bytes: Vec<u8>| {
        assert!(all.entry(target).or_default().insert(name, bytes).is_none(), "two seeds of one name");
    };

    let v = vectors("card-v1.json");
    for (i, c) in items(&v["valid"]).iter().enumerate() {
        add("card", format!("valid-{i}"), [&[0][..], &text(&c["card"])].concat());
        add("card", format!("valid-{i}-payload"), [&[1][..], &hex(&c["payload_hex"])].concat());
    }
    for (i, c) in items(&v["invalid"]).iter().enumerate() {
        add("card", format!("invalid-{i}"), [&[0][..], &text(&c["card"])].concat());
    }

    let v = vectors("peer-record-v1.json");
    for (kind, list) in [("valid", &v["valid"]), ("invalid", &v["invalid"])] {
        for (i, r) in items(list).iter().enumerate() {
            let key = hex(&r["key"]);
            add("peer_record", format!("{kind}-{i}"), [&[0, key.len() as u8][..], &key, &hex(&r["value"])].concat());
        }
    }
    for (i, r) in items(&v["valid"]).iter().enumerate() {
        let mut seed = vec![1];
        for a in items(&r["addresses"]) {
            let a = a.as_str().unwrap().parse::<multiaddr::Multiaddr>().unwrap().to_vec();
            seed.push(a.len() as u8);
            seed.extend_from_slice(&a);
        }
        add("peer_record", format!("valid-{i}-addresses"), seed);
    }

    let v = vectors("signaling-v1.json");
    for (i, m) in items(&v["invites"]).iter().enumerate() {
        add("signal", format!("invite-{i}"), serde_json::to_vec(m).unwrap());
    }
    for (i, m) in items(&v["replies"]).iter().enumerate() {
        add("signal", format!("reply-{i}"), serde_json::to_vec(m).unwrap());
    }
    for (i, m) in items(&v["bad_invites"]).iter().enumerate() {
        add("signal", format!("bad-invite-{i}"), serde_json::to_vec(&m["invite"]).unwrap());
    }
    for (i, m) in items(&v["control"]).iter().enumerate() {
        add("signal", format!("control-{i}"), hex(&m["frame"])[2..].to_vec());
    }

    let v = vectors("handshake-v1.json");
    let commitment = hex(&v["commitment"]);
    add("handshake_responder", "message-1".into(), [&[0][..], &hex(&v["message_1"])].concat());
    add("handshake_responder", "message-3".into(), [&[1][..], &hex(&v["message_3"])].concat());
    let nonce = hex(&v["initiator_nonce"]);
    add("handshake_responder", "message-3-payload".into(), [&[2][..], &binding(1), &nonce].concat());
    add("handshake_responder", "message-1-payload".into(), [&[3, 1][..], &commitment].concat());
    add("handshake_initiator", "message-2".into(), [&[0][..], &hex(&v["message_2"])].concat());
    add("handshake_initiator", "message-2-payload".into(), [&[1][..], &binding(2)].concat());

    let v = vectors("media-v1.json");
    for kind in ["audio", "report", "audio_spread", "report_with_bursts"] {
        add("media_packet", format!("{kind}-plaintext"), hex(&v[kind]["plaintext"]));
        add("media_packet", format!("{kind}-datagram"), hex(&v[kind]["datagram"]));
    }
    let video = &v["video"];
    add("video_wire", "plaintext".into(), hex(&video["plaintext"]));
    add("video_wire", "stream-header".into(), hex(&video["stream_header"]));
    add("video_wire", "record".into(), hex(&video["record"]));
    let gop = (video["gop"].as_u64().unwrap() as u32).to_be_bytes();
    add("video_wire", "gop-and-body".into(), [&gop[..], &hex(&video["record"])[4..]].concat());
    let record = hex(&video["record"]);
    add(
        "video_stream",
        "two-records".into(),
        [&[0x80, 7][..], &hex(&video["stream_header"]), &record, &record].concat(),
    );
    // video_receiver: a keyframe, the next frame, a replay of it, a tampered one, a new GOP.
    let av1 = hex(&video["av1"]);
    let record = |op: u8| [&[op, 33, av1.len() as u8][..], &av1].concat();
    add(
        "video_receiver",
        "a-gop".into(),
        [record(0x04), record(0x00), record(0x80), record(0x40), record(0x05)].concat(),
    );

    let v = vectors("group-media-v1.json");
    let group_frames = items(&v["frames"]).iter().chain(items(&v["rekey"]["frames"]));
    for (i, f) in group_frames.enumerate() {
        add("group_frame", format!("frame-{i}"), hex(&f["frame"]));
    }
    for (i, h) in items(&v["rfc9605_headers"]).iter().enumerate() {
        add("group_frame", format!("rfc9605-header-{i}"), [&[0x10][..], &hex(&h["header"]), &[0; 16]].concat());
    }

    let v = vectors("group-control-v1.json");
    for m in items(&v["valid"]) {
        add("group_control", m["name"].as_str().expect("a name").to_string(), hex(&m["hex"]));
    }

    let v = vectors("media-relay-v1.json");
    for list in ["requests", "responses", "candidates"] {
        for (i, m) in items(&v[list]).iter().enumerate() {
            add("relay", format!("{list}-{i}"), text(&m["text"]));
        }
    }
    for (i, m) in items(&v["bad_candidates"]).iter().enumerate() {
        add("relay", format!("bad-candidate-{i}"), text(m));
    }

    let v = vectors("reflect-v1.json");
    add("reflect", "request".into(), hex(&v["request"]));
    for (i, m) in items(&v["answers"]).iter().enumerate() {
        add("reflect", format!("answer-{i}"), hex(&m["answer"]));
    }

    let v = vectors("control-v1.json");
    let mut session = vec![255, 6];
    for (i, step) in items(&v["transcript"]).iter().enumerate() {
        let line = text(&step["send"]);
        add("control_line", format!("request-{i}"), [&[255, 15][..], &line, b"\n"].concat());
        session.extend_from_slice(&line);
        session.extend_from_slice(b"\r\n");
    }
    add("control_line", "session".into(), session);
    let hello = serde_json::to_vec(&v["hello"]).unwrap();
    add("control_line", "hello".into(), [&[255, 15][..], &hello, b"\n"].concat());

    // Not wire formats: files a user writes or names.
    add(
        "config",
        "doc-example".into(),
        b"[network]\nmdns = true\ndht_mode = \"auto\"   # auto | server | client\n".to_vec(),
    );
    add(
        "config",
        "every-key".into(),
        b"[network]\nlisten = [\"/ip4/0.0.0.0/tcp/0\"]\nbootstrap = [\"ipfs\"]\nmdns = true\n\
          dht_protocol = \"/hail/kad/1.0.0\"\ndht_mode = \"auto\"\nrelay = \"auto\"\n\
          [calls]\nauto_answer = false\nunknown_callers = \"ring\"\nring_timeout_secs = 45\n\
          media_listen = \"0.0.0.0:0\"\nmax_invites_per_peer = 3\nmax_invites_total = 20\n\
          media_advertise = [\"192.0.2.1:4433\"]\n\
          [audio]\ninput = \"tone:440\"\noutput = \"null\"\nbitrate_kbps = 32\nprocessing = \"auto\"\n\
          [video]\ninput = \"pattern\"\noutput = \"null\"\nencoder = \"rav1e\"\nmax_size = \"640x360\"\n"
            .to_vec(),
    );
    let frame: Vec<u8> = [&b"FRAME\n"[..], &[16, 17, 18, 19, 128, 128]].concat();
    add("y4m", "2x2-two-frames".into(), [&b"YUV4MPEG2 W2 H2 F30:1 Ip A1:1 C420jpeg\n"[..], &frame, &frame].concat());
    let spec = |channels, sample_rate, bits, float| hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    add("wav", "mono-48k-16".into(), wav(spec(1, 48_000, 16, false), &[0, 1000, -1000, 32767, -32768, 5]));
    add("wav", "stereo-44k1-8".into(), wav(spec(2, 44_100, 8, false), &[0, 100, -100, 127, -128, 5]));
    add("wav", "mono-8k-float".into(), wav(spec(1, 8_000, 32, true), &[0, 500, -500, 1000]));
    add("replay_window", "in-order".into(), vec![65; 16]);
    add(
        "replay_window",
        "jumps".into(),
        [&[65, 0xff][..], &2000u64.to_be_bytes(), &[0, 65, 64, 0xff], &[0; 8]].concat(),
    );
    all
}

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

#[test]
fn every_fuzz_target_has_seeds_from_the_vectors() {
    // Reading the vectors into seeds is the check that the generator still fits the vector files;
    // the committed seeds are a starting point for the fuzzers, rewritten with HAIL_FUZZ_WRITE_SEEDS=1
    // (a vector that changes later leaves them a little stale, which only costs the fuzzer a moment).
    let want = seeds();
    if std::env::var_os("HAIL_FUZZ_WRITE_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(seed_dir());
        for (target, files) in &want {
            std::fs::create_dir_all(seed_dir().join(target)).unwrap();
            for (name, bytes) in files {
                std::fs::write(seed_dir().join(target).join(name), bytes).unwrap();
            }
        }
    }
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
        .filter(|n| *n != "hail-fuzz")
        .collect();
    assert_eq!(targets.len(), want.len(), "a seed list per fuzz target: {targets:?}");
    for target in targets {
        assert!(!want[target].is_empty(), "{target} has no seeds");
        let committed = std::fs::read_dir(seed_dir().join(target))
            .unwrap_or_else(|e| panic!("fuzz/seeds/{target}: {e} (HAIL_FUZZ_WRITE_SEEDS=1 writes them)"));
        assert!(committed.count() > 0, "fuzz/seeds/{target} is empty");
    }
}

// Inputs the fuzzers crashed on. Each test names its target and replays the minimised input the way
// the target feeds it; each failed before its fix.

/// `replay_window`, input `3f`: one step of -1 from 0, the counter 2^64 - 1. Accepting it overflowed
/// "one past the highest counter" (a panic in debug builds; in release the window reset to 0 and
/// every earlier counter could be replayed). Any peer in a call can send it: it holds the key.
#[test]
fn replay_window_counter_2_64_minus_1() {
    use hail::crypto::frame::{FrameError, ReplayWindow};
    let mut window = ReplayWindow::default();
    let counter = 0u64.wrapping_add(0x3f).wrapping_sub(64);
    assert_eq!(counter, u64::MAX);
    if window.check(counter).is_ok() {
        window.accept(counter);
    }
    assert_eq!(window.check(u64::MAX), Err(FrameError::TooOld), "the one counter no sender reaches is refused");
    window.accept(7);
    assert_eq!(window.check(7), Err(FrameError::Replay));
    assert_eq!(window.check(8), Ok(()));
}

/// `y4m`, input `YUV4MPEG2 \xc8\xa6`: a header field starting with a character of two bytes. Splitting
/// the tag off at byte 1 panicked.
#[test]
fn y4m_header_field_starting_with_a_multibyte_character() {
    use hail::media::video::y4m::Y4mReader;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.y4m");
    std::fs::write(&path, HEX.decode(b"595556344d5045473220c8a6").unwrap()).unwrap();
    assert!(Y4mReader::open(&path).is_err(), "no size: refused with an error");
    std::fs::write(&path, "YUV4MPEG2 W2 H2 \u{0226}x F30:1\n").unwrap();
    let reader = Y4mReader::open(&path).expect("an unknown tag is skipped, as the format says");
    assert_eq!((reader.size(), reader.frame_rate()), ((2, 2), hail::media::video::clock::FrameRate::THIRTY));
}

/// `video_receiver`, input `tests/fuzz_regressions/video_receiver-wall-clock-at-2-63.bin`: a frame,
/// then a keyframe arriving when the wall clock reads 2^63 µs; `wall − capture` overflowed i64.
/// Capture times come from the peer, so any value must be harmless (issue 11, item 11).
#[test]
fn video_receiver_wall_clock_at_2_63() {
    use hail::crypto::frame::{FrameKeys, MediaKind};
    use hail::media::video::receiver::VideoReceiver;
    use hail::media::video::wire::{FLAG_KEYFRAME, VideoFrame, seal};
    use std::time::{Duration, Instant};
    let input = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/video_receiver-wall-clock-at-2-63.bin"),
    )
    .unwrap();
    assert_eq!(input, [0x00, 0x00, 0x00, 0x26, 0x80]);
    // What the fuzz target makes of it: op 0x00 (same GOP, next frame, capture +33 ms, 0 ms later,
    // no AV1 given), then op 0x26 (previous GOP, keyframe, wall clock from the next 8 bytes: 80 00…).
    let sender = FrameKeys::new([0x61; 32], [0x62; 32], true, &[0x63; 32]);
    let receiver_keys = FrameKeys::new([0x61; 32], [0x62; 32], false, &[0x63; 32]);
    let mut sealer = sender.sealer(MediaKind::Video);
    let mut receiver = VideoReceiver::new(&receiver_keys, 1).unwrap();
    let t0 = Instant::now();
    receiver.set_remote_sending(true, t0);
    let capture = 1_700_000_000_000_000u64;
    let records = [
        (0u32, 1u32, 0u8, capture + 33_000, 1_700_000_000_000_000u64),
        (u32::MAX, 2, FLAG_KEYFRAME, capture + 66_000, 1 << 63),
    ];
    for (gop, frame, flags, capture_us, wall_us) in records {
        let f = VideoFrame { frame, capture_us, flags, width: 320, height: 180, av1: vec![0x12, 0] };
        let record = seal(&mut sealer, gop, &f);
        let _ = receiver.on_record(t0 + Duration::from_millis(0), wall_us, gop, &record[4..]);
        let _ = receiver.poll_keyframe_request(t0);
        while receiver.poll_render(t0, wall_us, None).is_some() {}
    }
    assert_eq!(receiver.stats().frames_received, 2);
}
