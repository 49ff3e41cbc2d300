//! The video receiver (`src/media/video/receiver.rs`): what it does with a peer's stream of sealed
//! video records (GOPs, frame numbers, capture times, AV1 bytes all chosen by the peer), with dav1d
//! behind it.
//!
//! Input: a list of records, each `op (1) || fields the op asks for || av1 length (1) || av1`:
//! - op bits 0-1: GOP the same (0), next (1), previous (2), or the next 4 bytes (3);
//! - bit 2: keyframe; bit 3: frame number the next 4 bytes (else the one after the last);
//! - bit 4: capture time the next 8 bytes (else 33 ms after the last); bit 5: arrival clock the
//!   next 8 bytes (else 0 to 255 ms later, one byte);
//! - bit 6: tampered in transit; bit 7: the previous record again (a replay).
//!
//! Each record is sealed with the sender's key, handed to `on_record`, and the receiver is polled
//! (keyframe requests, rendering). Checks: the receiver counts exactly the records that were
//! fresh, tampered and replayed, and never finds one of ours malformed; a rendered picture is one
//! that was received.
#![no_main]

use std::time::{Duration, Instant};

use hail::crypto::frame::{FrameKeys, MediaKind};
use hail::media::video::receiver::VideoReceiver;
use hail::media::video::wire::{FLAG_KEYFRAME, VideoFrame, seal};
use hail_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let sender_keys = FrameKeys::new([0x61; 32], [0x62; 32], true, &[0x63; 32]);
    let receiver_keys = FrameKeys::new([0x61; 32], [0x62; 32], false, &[0x63; 32]);
    let mut sealer = sender_keys.sealer(MediaKind::Video);
    let Ok(mut receiver) = VideoReceiver::new(&receiver_keys, 1) else { return };
    let t0 = Instant::now();
    let (mut elapsed_ms, mut wall_us) = (0u64, 1_700_000_000_000_000u64);
    let (mut gop, mut frame, mut capture_us) = (0u32, 0u32, 1_700_000_000_000_000u64);
    let (mut fresh, mut tampered, mut replayed) = (0u64, 0u64, 0u64);
    let mut previous: Option<(u32, Vec<u8>)> = None;
    let mut sent_frames = std::collections::BTreeSet::new();
    receiver.set_remote_sending(true, t0);
    for _ in 0..32 {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        gop = match op & 3 {
            0 => gop,
            1 => gop.wrapping_add(1),
            2 => gop.wrapping_sub(1),
            _ => input.u16() as u32 | (input.u16() as u32) << 16,
        };
        frame = if op & 8 != 0 { input.u16() as u32 | (input.u16() as u32) << 16 } else { frame.wrapping_add(1) };
        capture_us = if op & 16 != 0 { input.u64() } else { capture_us.wrapping_add(33_000) };
        if op & 32 != 0 {
            wall_us = input.u64();
        } else {
            let step = input.u8() as u64;
            elapsed_ms += step;
            wall_us = wall_us.wrapping_add(step * 1000);
        }
        let len = input.u8() as usize;
        let av1 = input.take(len).to_vec();
        let now = t0 + Duration::from_millis(elapsed_ms);
        let (record_gop, body) = if op & 128 != 0 && previous.is_some() {
            replayed += 1;
            previous.clone().unwrap()
        } else {
            let f = VideoFrame {
                frame,
                capture_us,
                flags: if op & 4 != 0 { FLAG_KEYFRAME } else { 0 },
                width: 320,
                height: 180,
                av1: if av1.is_empty() { vec![0x12, 0] } else { av1 },
            };
            let mut body = seal(&mut sealer, gop, &f)[4..].to_vec();
            if op & 64 != 0 {
                let i = 8 + (capture_us as usize % (body.len() - 8));
                body[i] ^= 1;
                tampered += 1;
            } else {
                fresh += 1;
                sent_frames.insert((frame, capture_us));
                previous = Some((gop, body.clone()));
            }
            (gop, body)
        };
        let _ = receiver.on_record(now, wall_us, record_gop, &body);
        let _ = receiver.poll_keyframe_request(now);
        let audio_age = (op & 1 != 0).then_some(60_000);
        let _ = receiver.next_due_us(audio_age);
        while let Some(shown) = receiver.poll_render(now, wall_us, audio_age) {
            assert!(sent_frames.contains(&(shown.frame, shown.capture_us)));
        }
    }
    let stats = receiver.stats();
    assert_eq!(stats.frames_received, fresh);
    assert_eq!(stats.tampered, tampered);
    assert_eq!(stats.replayed, replayed);
    assert_eq!(stats.malformed, 0);
    assert!(stats.frames_decoded <= fresh);
});
