//! Media datagrams against `protocols/vectors/media-v1.json`.

use hail::crypto::frame::{FrameKeys, MediaKind};
use hail::media::packet::{self, AudioPacket, BurstReport, KIND_AUDIO, KIND_REPORT, ReceiverReport};
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

fn vectors() -> Value {
    serde_json::from_str(include_str!("../protocols/vectors/media-v1.json")).unwrap()
}

fn num<T: TryFrom<u64>>(v: &Value) -> T {
    T::try_from(v.as_u64().unwrap()).ok().unwrap()
}

/// The audio vector `name`: its packet encodes to its plaintext, seals (the first audio datagram)
/// to its datagram, and opens on the other side to itself.
fn audio_vector(v: &Value, name: &str) -> AudioPacket {
    let a = &v[name];
    let packet = AudioPacket {
        seq: num(&a["seq"]),
        capture_us: num(&a["capture_us"]),
        flags: num(&a["flags"]),
        frames: a["frames"].as_array().unwrap().iter().map(|f| (num(&f["seq"]), hex(&f["opus"]))).collect(),
    };
    assert_eq!(packet.encode(), hex(&a["plaintext"]), "{name}");
    let mut sealer = keys(v, true).sealer(MediaKind::Audio);
    let datagram = packet::seal(KIND_AUDIO, &mut sealer, &packet.encode());
    assert_eq!(datagram, hex(&a["datagram"]), "{name}");
    let mut opener = keys(v, false).opener(MediaKind::Audio);
    assert_eq!(AudioPacket::decode(&packet::open(&mut opener, &datagram).unwrap()).unwrap(), packet, "{name}");
    packet
}

/// The report vector `name`, likewise (the first report datagram).
fn report_vector(v: &Value, name: &str) -> ReceiverReport {
    let r = &v[name];
    let report = ReceiverReport {
        highest_seq: num(&r["highest_seq"]),
        received: num(&r["received"]),
        lost: num(&r["lost"]),
        loss_permille: num(&r["loss_permille"]),
        jitter_us: num(&r["jitter_us"]),
        buffered_ms: num(&r["buffered_ms"]),
        rtt_ms: num(&r["rtt_ms"]),
        bursts: r.get("bursts").map(|b| BurstReport {
            bursts: num(&b["bursts"]),
            mean_centi: num(&b["mean_centi"]),
            max: num(&b["max"]),
            recent_mean_centi: num(&b["recent_mean_centi"]),
            recent_p90: num(&b["recent_p90"]),
        }),
    };
    assert_eq!(report.encode(), hex(&r["plaintext"]), "{name}");
    let mut sealer = keys(v, true).sealer(MediaKind::Report);
    let datagram = packet::seal(KIND_REPORT, &mut sealer, &report.encode());
    assert_eq!(datagram, hex(&r["datagram"]), "{name}");
    let mut opener = keys(v, false).opener(MediaKind::Report);
    assert_eq!(ReceiverReport::decode(&packet::open(&mut opener, &datagram).unwrap()).unwrap(), report, "{name}");
    report
}

#[test]
fn media_datagrams_match_the_vectors_and_open_on_the_other_side() {
    let v = vectors();
    audio_vector(&v, "audio");
    let report = report_vector(&v, "report");
    assert_eq!(report.bursts, None);
    assert_eq!(report.encode().len(), packet::REPORT_LEN, "what a parser from before the extensions reads");
}

#[test]
fn copies_spaced_for_bursts_and_the_burst_report_extension_match_the_vectors() {
    let v = vectors();
    let spread = audio_vector(&v, "audio_spread");
    let distances: Vec<u32> = spread.frames.iter().map(|(seq, _)| spread.seq - seq).collect();
    assert_eq!(distances, [0, 3, 6], "any distance, in the datagram format as it was");
    assert_eq!(spread.flags & packet::FLAG_REPORT_EXTENSIONS, packet::FLAG_REPORT_EXTENSIONS);
    let report = report_vector(&v, "report_with_bursts");
    let bursts = report.bursts.expect("the burst extension");
    assert_eq!((bursts.recent_mean_centi, bursts.recent_p90), (300, 6));
    // The base report is the first 22 bytes, as before; the extension follows.
    let plain = report.encode();
    assert_eq!(
        ReceiverReport::decode(&plain[..packet::REPORT_LEN]).unwrap(),
        ReceiverReport { bursts: None, ..report }
    );
    assert_eq!(&plain[packet::REPORT_LEN..packet::REPORT_LEN + 2], [packet::EXTENSION_BURSTS, 10]);
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
