//! Peer records against `protocols/vectors/peer-record-v1.json`.

use hail::discovery::record::{RecordError, verify_record};
use serde_json::Value;

fn hex(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap()
}

fn rule(e: &RecordError) -> &'static str {
    match e {
        RecordError::Namespace => "namespace",
        RecordError::KeyPeer => "key_peer",
        RecordError::TooLarge(_) => "too_large",
        RecordError::Signature => "signature",
        RecordError::WrongPeer => "wrong_peer",
        RecordError::Stale => "stale",
        RecordError::TooManyAddresses(_) => "too_many_addresses",
    }
}

#[test]
fn peer_record_vectors_hold() {
    let vectors: Value = serde_json::from_str(include_str!("../protocols/vectors/peer-record-v1.json")).unwrap();
    for v in vectors["valid"].as_array().unwrap() {
        let record = verify_record(&hex(&v["key"]), &hex(&v["value"])).unwrap();
        assert_eq!(record.peer_id.to_base58(), v["peer_id"].as_str().unwrap());
        let addresses: Vec<String> = record.addresses.iter().map(ToString::to_string).collect();
        let expected: Vec<&str> = v["addresses"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(addresses, expected);
    }
    let invalid = vectors["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 6);
    for v in invalid {
        let err = verify_record(&hex(&v["key"]), &hex(&v["value"])).expect_err(v["comment"].as_str().unwrap());
        assert_eq!(rule(&err), v["error"].as_str().unwrap(), "{}", v["comment"]);
    }
}
