//! Signalling messages against `protocols/vectors/signaling-v1.json`.

use hail::call::signal::{ControlMessage, Invite, InviteReply};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../protocols/vectors/signaling-v1.json")).unwrap()
}

#[test]
fn invites_and_replies_parse_and_round_trip() {
    let v = vectors();
    for raw in v["invites"].as_array().unwrap() {
        let invite: Invite = serde_json::from_value(raw.clone()).unwrap();
        invite.validate().unwrap();
        assert_eq!(&serde_json::to_value(&invite).unwrap(), raw);
    }
    for raw in v["replies"].as_array().unwrap() {
        let reply: InviteReply = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&reply).unwrap(), raw);
    }
}

#[test]
fn bad_invites_are_refused() {
    let v = vectors();
    let bad = v["bad_invites"].as_array().unwrap();
    assert!(bad.len() >= 5);
    for case in bad {
        let parsed: Result<Invite, _> = serde_json::from_value(case["invite"].clone());
        let refused = match parsed {
            Err(_) => true,
            Ok(invite) => invite.validate().is_err(),
        };
        assert!(refused, "accepted: {}", case["comment"]);
    }
}

#[test]
fn control_frames_are_exact() {
    let v = vectors();
    for case in v["control"].as_array().unwrap() {
        let msg: ControlMessage = serde_json::from_value(case["message"].clone()).unwrap();
        let frame = data_encoding::HEXLOWER.encode(&msg.encode());
        assert_eq!(frame, case["frame"].as_str().unwrap());
        let body = &msg.encode()[2..];
        assert_eq!(ControlMessage::decode(body).unwrap(), msg);
    }
}
