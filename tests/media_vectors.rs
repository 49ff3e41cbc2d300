//! Media datagrams against `protocols/vectors/media-v1.json`.

use hail::crypto::frame::{FrameKeys, MediaKind};
use hail::media::packet::{self, AudioPacket, KIND_AUDIO, KIND_REPORT, ReceiverReport};
use serde_json::Value;

fn hex(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap()
}

fn keys(v: &Value, initiator: bool) -> FrameKeys {
    FrameKeys::new(
        hex(&v["i2r"]).try_into().unwrap(),
        hex(&v["r2i"]).try_into().unwrap(),
        initiator,
        &hex(&v["handshake_hash"]),
    )
}

#[test]
fn media_datagrams_match_the_vectors_and_open_on_the_other_side() {
    let v: Value = serde_json::from_str(include_str!("../protocols/vectors/media-v1.json")).unwrap();
    let a = &v["audio"];
    let packet = AudioPacket {
        seq: a["seq"].as_u64().unwrap() as u32,
        capture_us: a["capture_us"].as_u64().unwrap(),
        flags: a["flags"].as_u64().unwrap() as u8,
        frames: a["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["seq"].as_u64().unwrap() as u32, hex(&f["opus"])))
            .collect(),
    };
    assert_eq!(packet.encode(), hex(&a["plaintext"]));
    let mut sealer = keys(&v, true).sealer(MediaKind::Audio);
    let datagram = packet::seal(KIND_AUDIO, &mut sealer, &packet.encode());
    assert_eq!(datagram, hex(&a["datagram"]));
    let mut opener = keys(&v, false).opener(MediaKind::Audio);
    assert_eq!(AudioPacket::decode(&packet::open(&mut opener, &datagram).unwrap()).unwrap(), packet);

    let r = &v["report"];
    let report = ReceiverReport {
        highest_seq: r["highest_seq"].as_u64().unwrap() as u32,
        received: r["received"].as_u64().unwrap() as u32,
        lost: r["lost"].as_u64().unwrap() as u32,
        loss_permille: r["loss_permille"].as_u64().unwrap() as u16,
        jitter_us: r["jitter_us"].as_u64().unwrap() as u32,
        buffered_ms: r["buffered_ms"].as_u64().unwrap() as u16,
        rtt_ms: r["rtt_ms"].as_u64().unwrap() as u16,
    };
    assert_eq!(report.encode(), hex(&r["plaintext"]));
    let mut sealer = keys(&v, true).sealer(MediaKind::Report);
    assert_eq!(packet::seal(KIND_REPORT, &mut sealer, &report.encode()), hex(&r["datagram"]));
}

#[test]
fn a_video_record_matches_the_vector_and_opens_only_on_its_own_stream() {
    use hail::media::video::wire::{self, VideoFrame};
    let v: Value = serde_json::from_str(include_str!("../protocols/vectors/media-v1.json")).unwrap();
    let x = &v["video"];
    let gop = x["gop"].as_u64().unwrap() as u32;
    let frame = VideoFrame {
        frame: x["frame"].as_u64().unwrap() as u32,
        capture_us: x["capture_us"].as_u64().unwrap(),
        flags: x["flags"].as_u64().unwrap() as u8,
        width: x["width"].as_u64().unwrap() as u16,
        height: x["height"].as_u64().unwrap() as u16,
        av1: hex(&x["av1"]),
    };
    assert_eq!(wire::stream_header(gop).to_vec(), hex(&x["stream_header"]));
    assert_eq!(frame.encode(), hex(&x["plaintext"]));
    let mut sealer = keys(&v, true).sealer(MediaKind::Video);
    let record = wire::seal(&mut sealer, gop, &frame);
    assert_eq!(record, hex(&x["record"]));
    let body = &record[4..];
    assert_eq!(wire::record_len(record[..4].try_into().unwrap()).unwrap(), body.len());
    let mut opener = keys(&v, false).opener(MediaKind::Video);
    assert!(wire::open(&mut opener, gop + 1, body).is_err(), "the GOP is authenticated");
    assert_eq!(wire::open(&mut opener, gop, body).unwrap(), frame);
    assert!(wire::open(&mut opener, gop, body).is_err(), "a replay");
}
