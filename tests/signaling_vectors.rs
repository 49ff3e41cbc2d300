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
fn the_callee_names_the_newest_sas_table_both_have() {
    let v = vectors();
    let cases = v["sas_tables"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let invite: Invite = serde_json::from_value(case["invite"].clone()).unwrap();
        invite.validate().unwrap();
        let picked = invite.sas_table();
        assert_eq!(picked.version() as u64, case["ringing_sas_table"].as_u64().unwrap(), "{}", case["comment"]);
        let reply = serde_json::to_value(InviteReply::ringing(vec!["192.0.2.1:1".into()], picked)).unwrap();
        assert_eq!(reply["sas_table"], case["ringing_sas_table"]);
    }
}

#[test]
fn messages_from_newer_peers_parse_and_their_unknown_fields_are_ignored() {
    let v = vectors();
    for raw in v["unknown_fields"]["invites"].as_array().unwrap() {
        let invite: Invite = serde_json::from_value(raw.clone()).unwrap();
        invite.validate().unwrap();
        assert!(!serde_json::to_value(&invite).unwrap().as_object().unwrap().contains_key("future_field"));
    }
    for raw in v["unknown_fields"]["replies"].as_array().unwrap() {
        let reply: InviteReply = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(serde_json::to_value(&reply).unwrap()["reply"], raw["reply"]);
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

#[test]
fn a_ringing_reply_may_carry_the_callees_relay_candidate() {
    let v = vectors();
    let cases = v["callee_relay"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let reply: InviteReply = serde_json::from_value(case["reply"].clone()).unwrap();
        let InviteReply::Ringing { candidates, .. } = reply else { panic!("{}: not ringing", case["comment"]) };
        // What every v1 caller dials directly (one that predates callee relays stops here).
        let direct: Vec<String> =
            hail::call::signal::parse_candidates(&candidates).unwrap().iter().map(ToString::to_string).collect();
        let want: Vec<String> = serde_json::from_value(case["direct"].clone()).unwrap();
        assert_eq!(direct, want, "{}", case["comment"]);
        let relays: Vec<_> = candidates.iter().filter_map(|c| hail::relay::parse_candidate(c)).collect();
        assert_eq!(relays.len(), 1, "{}", case["comment"]);
        assert_eq!(relays[0].0.to_string(), case["relay"]["peer"].as_str().unwrap());
        assert_eq!(relays[0].1.to_string(), case["relay"]["address"].as_str().unwrap());
    }
}

#[test]
fn group_legs_carry_the_group_and_its_messages_ride_the_control_stream() {
    let v = vectors();
    let legs: Vec<Invite> = v["invites"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|raw| serde_json::from_value::<Invite>(raw.clone()).ok())
        .filter(|i| i.group.is_some())
        .collect();
    assert_eq!(legs.len(), 2, "a join leg and a mesh leg");
    for invite in &legs {
        let group = invite.group.as_ref().unwrap();
        assert_ne!(group.id, invite.call_id, "the leg has its own call id");
        assert!(!group.member_ids().unwrap().is_empty());
        assert_eq!(group.version, hail::call::signal::GROUP_VERSION, "a leg says its group protocol");
    }
    // Without a version: the first group protocol, on both sides.
    let first: hail::call::signal::GroupLeg = serde_json::from_value(v["group_legs"]["first_version_invite_group"].clone()).unwrap();
    assert_eq!(first.version, 1);
    let first: InviteReply = serde_json::from_value(v["group_legs"]["first_version_reply"].clone()).unwrap();
    assert!(matches!(first, InviteReply::Ringing { group: true, group_version: None, .. }));
    // A ringing reply says whether the callee took the group; an old callee's does not.
    let old: InviteReply = serde_json::from_value(v["group_legs"]["old_callee_reply"].clone()).unwrap();
    assert!(matches!(old, InviteReply::Ringing { group: false, .. }));
    assert!(v["replies"].as_array().unwrap().iter().any(|r| {
        matches!(
            serde_json::from_value::<InviteReply>(r.clone()),
            Ok(InviteReply::Ringing { group: true, group_version: Some(hail::call::signal::GROUP_VERSION), .. })
        )
    }));
    // The group frame's bytes are a group control message of group-control-v1.json.
    let frame = v["control"].as_array().unwrap().iter().find(|c| c["message"]["type"] == "group").unwrap();
    let message: ControlMessage = serde_json::from_value(frame["message"].clone()).unwrap();
    let bytes = message.group_bytes().unwrap();
    let control = hail::group::control::GroupControl::decode(&bytes).unwrap();
    assert!(matches!(control.body, hail::group::control::ControlBody::JoinRequest));
    assert_eq!(ControlMessage::group(&bytes), message);
}
