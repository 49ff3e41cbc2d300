//! Media datagrams (`src/media/packet.rs`, `protocols/media-v1.md`): audio frames and receiver
//! reports from the peer, sealed per frame.
//!
//! The same bytes go to every decoder. Checks: an audio plaintext that decodes re-encodes to
//! exactly itself (one encoding per packet) within the frame limits; a report that decodes has
//! the 22-byte base, and what it decoded to round-trips (unknown extensions are skipped); a
//! datagram opens (with the keys of `protocols/vectors/media-v1.json`) only if authentic; anything
//! sealed opens back to itself once, and never twice.
#![no_main]

use hail::crypto::frame::{FrameError, FrameKeys, MediaKind};
use hail::media::packet::{
    AudioPacket, KIND_AUDIO, KIND_REPORT, MAX_FRAMES, MAX_OPUS_FRAME, PacketError, REPORT_LEN, ReceiverReport, kind,
    open, seal,
};
use libfuzzer_sys::fuzz_target;

fn keys(initiator: bool) -> FrameKeys {
    FrameKeys::new([0x61; 32], [0x62; 32], initiator, &[0x63; 32])
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = AudioPacket::decode(data) {
        assert_eq!(p.encode(), data);
        assert!((1..=MAX_FRAMES).contains(&p.frames.len()));
        assert_eq!(p.frames[0].0, p.seq);
        assert!(p.frames.iter().all(|(seq, opus)| *seq <= p.seq && opus.len() <= MAX_OPUS_FRAME));
    }
    if let Ok(r) = ReceiverReport::decode(data) {
        assert!(data.len() >= REPORT_LEN);
        assert!(r.loss_permille <= 1000);
        assert_eq!(ReceiverReport::decode(&r.encode()), Ok(r));
    }
    // The datagram as received: its kind, then opening it as the initiator would.
    let known = kind(data);
    let mut opener = keys(true).opener(MediaKind::Audio);
    match open(&mut opener, data) {
        Ok(plain) => {
            assert!(known.is_ok());
            assert_eq!(open(&mut opener, data), Err(PacketError::Frame(FrameError::Replay)));
            match known {
                Ok(KIND_AUDIO) => drop(AudioPacket::decode(&plain)),
                Ok(KIND_REPORT) => drop(ReceiverReport::decode(&plain)),
                _ => {}
            }
        }
        Err(PacketError::Truncated) => assert!(data.len() < 25),
        Err(_) => {}
    }
    // Sealing: the responder seals, the initiator opens.
    let mut sealer = keys(false).sealer(MediaKind::Audio);
    let mut opener = keys(true).opener(MediaKind::Audio);
    let sealed = seal(KIND_REPORT, &mut sealer, data);
    assert_eq!(kind(&sealed), Ok(KIND_REPORT));
    assert_eq!(open(&mut opener, &sealed).as_deref(), Ok(data));
    assert!(open(&mut opener, &sealed).is_err());
});
