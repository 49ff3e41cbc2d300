//! The Y4M reader (`src/media/video/y4m.rs`): a video file the user names as a call's source.
//!
//! The bytes are written to a file and read as a call would: the header, then up to 4 frames.
//! Checks: an accepted header has an even size within 7680x4320 and a non-zero frame rate; every
//! frame has that size and full planes; the first frame written back with `Y4mWriter` reads back
//! equal.
#![no_main]

use hail::media::video::y4m::{Y4mReader, Y4mWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = hail_fuzz::scratch_file("in.y4m", data);
    let Ok(mut reader) = Y4mReader::open(&path) else { return };
    let (w, h) = reader.size();
    assert!(w > 0 && h > 0 && w % 2 == 0 && h % 2 == 0 && w <= 7680 && h <= 4320);
    let rate = reader.frame_rate();
    assert!(rate.num() > 0 && rate.den() > 0);
    let mut first = None;
    for _ in 0..4 {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                assert_eq!((frame.width, frame.height), (w, h));
                assert_eq!(frame.y.len(), w * h);
                assert_eq!(frame.u.len(), (w / 2) * (h / 2));
                assert_eq!(frame.v.len(), (w / 2) * (h / 2));
                first.get_or_insert(frame);
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(frame) = first {
        let out = hail_fuzz::scratch_file("out.y4m", b"");
        let mut writer = Y4mWriter::create(&out, w, h, rate).unwrap();
        writer.write(&frame).unwrap();
        writer.finish(rate).unwrap();
        let mut back = Y4mReader::open(&out).unwrap();
        assert_eq!(back.frame_rate(), rate);
        assert_eq!(back.next_frame().unwrap(), Some(frame));
    }
});
