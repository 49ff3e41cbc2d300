//! Signalling (`src/call/signal.rs`, `protocols/signaling-v1.md`): the invite and its reply (JSON
//! over libp2p request/response, from any peer) and the control messages on the secure channel.
//!
//! Every decoder reads the same bytes. Checks: whatever decodes serializes and decodes back equal;
//! a valid invite has 1 to 8 candidates that all parse; a control frame's length prefix is right.
#![no_main]

use hail::call::signal::{MAX_CANDIDATES, MAX_CONTROL_MESSAGE, parse_candidates};
use hail::call::{ControlMessage, Invite, InviteReply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(invite) = serde_json::from_slice::<Invite>(data) {
        let again: Invite = serde_json::from_slice(&serde_json::to_vec(&invite).unwrap()).unwrap();
        assert_eq!(again, invite);
        if invite.validate().is_ok() {
            assert!((1..=MAX_CANDIDATES).contains(&invite.candidates.len()));
            assert!(parse_candidates(&invite.candidates).is_ok());
        }
    }
    if let Ok(reply) = serde_json::from_slice::<InviteReply>(data) {
        let again: InviteReply = serde_json::from_slice(&serde_json::to_vec(&reply).unwrap()).unwrap();
        assert_eq!(again, reply);
        if let InviteReply::Ringing { candidates, .. } = &reply {
            let _ = parse_candidates(candidates);
        }
    }
    match ControlMessage::decode(data) {
        Ok(message) => {
            assert!(data.len() <= MAX_CONTROL_MESSAGE);
            let frame = message.encode();
            assert_eq!(u16::from_be_bytes([frame[0], frame[1]]) as usize, frame.len() - 2);
            assert_eq!(ControlMessage::decode(&frame[2..]), Ok(message));
        }
        Err(_) => {}
    }
    // Candidate lists as text lines.
    if let Ok(text) = std::str::from_utf8(data) {
        let candidates: Vec<String> = text.lines().map(str::to_owned).collect();
        if let Ok(direct) = parse_candidates(&candidates) {
            assert!(direct.len() <= MAX_CANDIDATES);
        }
    }
});
