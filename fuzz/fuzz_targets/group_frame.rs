//! Group frames (`src/crypto/sender_key.rs`, `protocols/group-media-v1.md`): what a member or a
//! forwarder reads from another member, sealed once per sender.
//!
//! The input is the frame as received. Checks: a clear header that parses re-encodes to exactly
//! its bytes (one encoding per header) and leaves room for a tag; so does a bare SFrame header; the
//! frame opens (with the keys of `protocols/vectors/group-media-v1.json`: senders 1 and 2 of epoch
//! 7) only under a key the ring holds, and never twice; anything sealed opens back to itself once.
#![no_main]

use hail::crypto::frame::FrameError;
use hail::crypto::sender_key::{
    GroupFrameError, GroupFrameHeader, GroupMedia, KeyId, SenderBaseKey, SenderIndex, SenderKey, SenderKeyRing, TAG_LEN,
};
use libfuzzer_sys::fuzz_target;

fn key(sender: u8) -> (KeyId, SenderBaseKey) {
    let id = KeyId::new(7, SenderIndex(sender)).expect("epoch 7 fits a key id");
    (id, SenderBaseKey::from_bytes([0x70 + sender; 32]))
}

fn ring() -> SenderKeyRing {
    let mut ring = SenderKeyRing::new();
    for sender in [1, 2] {
        let (id, base) = key(sender);
        ring.install(id, &base).expect("a fresh ring takes any key");
    }
    ring
}

fuzz_target!(|data: &[u8]| {
    if let Ok((kid, ctr, len)) = GroupFrameHeader::parse_sframe_header(data) {
        assert_eq!(GroupFrameHeader::sframe_header(kid, ctr), data[..len]);
    }
    let parsed = GroupFrameHeader::parse(data);
    if let Ok((header, len)) = parsed {
        assert_eq!(header.encode(), data[..len]);
        assert!(data.len() >= len + TAG_LEN);
    }
    let mut receiver = ring();
    match receiver.open(data) {
        Ok(opened) => {
            let (header, _) = parsed.expect("a frame that opens parses");
            assert_eq!(opened.header, header);
            assert!([key(1).0, key(2).0].contains(&header.key_id));
            assert_eq!(receiver.open(data), Err(GroupFrameError::Frame(FrameError::Replay)));
        }
        Err(GroupFrameError::UnknownKey(id)) => assert!(!receiver.holds(id)),
        Err(_) => {}
    }
    // Sealing: sender 1 seals the input as its payload, a fresh ring opens it once.
    let media = data.first().and_then(|b| GroupMedia::from_byte(*b).ok()).unwrap_or(GroupMedia::Audio);
    let (id, base) = key(1);
    let mut sender = SenderKey::new(id, &base);
    let sealed = sender.seal(media, data);
    let mut receiver = ring();
    let opened = receiver.open(&sealed).expect("a frame sealed under an installed key opens");
    assert_eq!((opened.payload.as_slice(), opened.header.media, opened.header.key_id), (data, media, id));
    assert!(receiver.open(&sealed).is_err());
});
