//! Video wire records (`src/media/video/wire.rs`, `protocols/media-v1.md` "Video"): stream headers,
//! record length prefixes and sealed frames from the peer.
//!
//! The same bytes go to every decoder. Checks: a frame plaintext that decodes re-encodes to exactly
//! itself, with an even non-zero size and AV1 bytes; a length prefix is accepted only within
//! [24, MAX_RECORD]; a record opens (keys of `protocols/vectors/media-v1.json`) only if authentic,
//! and once; a frame we seal opens back equal, on its own GOP only.
#![no_main]

use hail::crypto::frame::{FrameKeys, MediaKind};
use hail::media::video::wire::{
    KIND_VIDEO, MAX_RECORD, STREAM_HEADER_LEN, VideoFrame, open, parse_stream_header, record_len, seal, stream_header,
};
use hail_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fn keys(initiator: bool) -> FrameKeys {
    FrameKeys::new([0x61; 32], [0x62; 32], initiator, &[0x63; 32])
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = VideoFrame::decode(data) {
        assert_eq!(f.encode(), data);
        assert!(f.width > 0 && f.height > 0 && f.width % 2 == 0 && f.height % 2 == 0);
        assert!(!f.av1.is_empty());
        let mut sealer = keys(false).sealer(MediaKind::Video);
        let mut opener = keys(true).opener(MediaKind::Video);
        let record = seal(&mut sealer, 9, &f);
        let len = record_len(record[..4].try_into().unwrap());
        if record.len() - 4 <= MAX_RECORD {
            assert_eq!(len, Ok(record.len() - 4));
        }
        assert!(open(&mut opener, 8, &record[4..]).is_err(), "bound to its GOP");
        assert_eq!(open(&mut opener, 9, &record[4..]), Ok(f));
    }
    let mut input = Input(data);
    if let Ok(header) = <[u8; STREAM_HEADER_LEN]>::try_from(input.take(STREAM_HEADER_LEN)) {
        match parse_stream_header(&header) {
            Ok(gop) => assert_eq!(stream_header(gop), header),
            Err(_) => assert_ne!(header[0], KIND_VIDEO),
        }
    }
    let mut input = Input(data);
    if let Ok(prefix) = <[u8; 4]>::try_from(input.take(4)) {
        if let Ok(len) = record_len(prefix) {
            assert!((24..=MAX_RECORD).contains(&len));
        }
    }
    // A record body as the receiver reads it: GOP from the first 4 bytes, body after them.
    let mut input = Input(data);
    let gop = u32::from_be_bytes(input.take(4).try_into().unwrap_or([0; 4]));
    let body = input.rest();
    let mut opener = keys(true).opener(MediaKind::Video);
    if open(&mut opener, gop, body).is_ok() {
        assert!(open(&mut opener, gop, body).is_err(), "a replay");
    }
});
