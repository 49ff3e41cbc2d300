//! Frame authenticators against `protocols/vectors/group-frame-auth-v1.json`, which
//! `scripts/frame-auth-vectors.py` computes with an implementation of its own (hashlib, the
//! `cryptography` package's Ed25519): the frames' digests, the list, the signed input, the
//! signature and the plaintext byte for byte; how a receiver judges frames against the list; and
//! plaintexts every reader refuses.

use std::time::Instant;

use hail::crypto::frame_auth::{FrameAuthError, FrameAuthenticator, FrameList, frame_digest};
use hail::crypto::sender_key::{KeyId, SenderIndex};
use hail::identity::Identity;
use hail::media::group_call::{Forged, Forgery, FrameVerifier};
use libp2p_identity::PeerId;
use serde_json::Value;

fn vectors() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/vectors/group-frame-auth-v1.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn the_list_its_signed_input_and_signature_are_the_specs_byte_for_byte() {
    let v = vectors();
    let identity = Identity::from_seed(hex(&v["signer_seed"]).try_into().unwrap());
    let signer: PeerId = v["signer_peer_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(identity.peer_id(), signer);
    let call_id: [u8; 16] = hex(&v["call_id"]).try_into().unwrap();
    let key_id = KeyId::new(num(&v["epoch"]), SenderIndex(num(&v["sender"]) as u8)).unwrap();
    assert_eq!(key_id.kid(), num(&v["kid"]));
    let frames = v["frames"].as_array().unwrap();
    for f in frames {
        assert_eq!(frame_digest(&hex(&f["frame"])).to_vec(), hex(&f["digest"]), "frame {}", f["counter"]);
    }
    let listed: Vec<(u64, [u8; 16])> = v["list"]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (num(c), frame_digest(&hex(&frames[num(c) as usize]["frame"]))))
        .collect();
    let list = FrameList { key_id, from: num(&v["list"]["from"]), frames: listed };
    assert_eq!(list.encode().unwrap(), hex(&v["list"]["encoded"]));
    assert_eq!(list.signed_input(&call_id).unwrap(), hex(&v["signed_input"]));
    let auth = FrameAuthenticator::sign(list, &call_id, identity.keypair()).unwrap();
    assert_eq!(auth.signature.to_vec(), hex(&v["signature"]));
    assert_eq!(auth.encode().unwrap(), hex(&v["plaintext"]));
    // Read back: the same, signed by the signer in this call only.
    let read = FrameAuthenticator::decode(&hex(&v["plaintext"])).unwrap();
    assert_eq!(read, auth);
    assert_eq!(read.verify(&call_id, &signer), Ok(()));
    let other: PeerId = v["other_peer_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(read.verify(&call_id, &other), Err(FrameAuthError::BadSignature));
    assert_eq!(read.verify(&[0; 16], &signer), Err(FrameAuthError::BadSignature));
}

#[test]
fn a_receiver_judges_each_frame_as_the_vector_says() {
    let v = vectors();
    let list = FrameAuthenticator::decode(&hex(&v["plaintext"])).unwrap().list;
    let key_id = list.key_id;
    let t0 = Instant::now();
    for j in v["judged"].as_array().unwrap() {
        let counter = num(&j["counter"]);
        let digest = frame_digest(&hex(&j["frame"]));
        // The frame before its list, and after it: the same verdict.
        let mut before = FrameVerifier::default();
        assert_eq!(before.frame(key_id, counter, digest, t0), None);
        let judged_late = before.list(list.clone(), t0);
        let mut after = FrameVerifier::default();
        after.list(list.clone(), t0);
        let judged_early = after.frame(key_id, counter, digest, t0);
        let sender = key_id.sender();
        let expected = match j["verdict"].as_str().unwrap() {
            "verified" => Some(None),
            "forged: digest" => Some(Some(Forged { sender, counter: Some(counter), why: Forgery::Digest })),
            "forged: unlisted" => Some(Some(Forged { sender, counter: Some(counter), why: Forgery::Unlisted })),
            "waits" => None,
            other => panic!("unknown verdict {other}"),
        };
        match expected {
            Some(forged) => {
                assert_eq!(judged_late, forged.into_iter().collect::<Vec<_>>(), "{}", j["what"]);
                assert_eq!(judged_early, forged, "{}", j["what"]);
                assert_eq!(before.stats(sender).verified, u64::from(forged.is_none()), "{}", j["what"]);
                assert!(!before.has_waiting());
            }
            None => {
                assert!(judged_late.is_empty() && judged_early.is_none(), "{}", j["what"]);
                assert!(before.has_waiting() && after.has_waiting(), "{}", j["what"]);
            }
        }
    }
}

#[test]
fn every_bad_plaintext_is_refused() {
    let v = vectors();
    for r in v["refusals"].as_array().unwrap() {
        let got = FrameAuthenticator::decode(&hex(&r["plaintext"]));
        let ok = match (r["error"].as_str().unwrap(), got) {
            ("count", Err(FrameAuthError::Count(_))) => true,
            ("counters", Err(FrameAuthError::Counters)) => true,
            ("length", Err(FrameAuthError::Length)) => true,
            (_, got) => panic!("{}: {got:?}", r["what"]),
        };
        assert!(ok);
    }
}
