//! Contact cards against `protocols/vectors/card-v1.json`.

use hail::identity::{Card, CardError, Identity};
use hail::name::Name;
use serde_json::Value;

fn kind(e: &CardError) -> &'static str {
    match e {
        CardError::NotACard => "not_a_card",
        CardError::BadCharacter(_) => "bad_character",
        CardError::Checksum => "checksum",
        CardError::Truncated => "truncated",
        CardError::TrailingData => "trailing_data",
        CardError::PeerId(_) => "peer_id",
        CardError::Name(_) => "name",
        CardError::NameEncoding => "name_encoding",
        CardError::Address => "address",
    }
}

fn vectors() -> Value {
    serde_json::from_str(include_str!("../protocols/vectors/card-v1.json")).unwrap()
}

#[test]
fn valid_vectors_encode_and_decode_exactly() {
    let vectors = vectors();
    let valid = vectors["valid"].as_array().unwrap();
    assert!(valid.len() >= 2);
    for v in valid {
        let seed: [u8; 32] =
            data_encoding::HEXLOWER.decode(v["seed"].as_str().unwrap().as_bytes()).unwrap().try_into().unwrap();
        let card = Card {
            peer_id: Identity::from_seed(seed).peer_id(),
            name: Name::parse(v["name"].as_str().unwrap()).unwrap(),
            addresses: v["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().parse().unwrap())
                .collect(),
        };
        assert_eq!(card.peer_id.to_base58(), v["peer_id"].as_str().unwrap());
        assert_eq!(data_encoding::HEXLOWER.encode(&card.payload()), v["payload_hex"].as_str().unwrap());
        assert_eq!(card.to_string(), v["card"].as_str().unwrap());
        assert_eq!(Card::parse(v["card"].as_str().unwrap()).unwrap(), card);
    }
}

#[test]
fn invalid_vectors_are_refused_for_the_stated_reason() {
    let vectors = vectors();
    let invalid = vectors["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 10);
    for v in invalid {
        let text = v["card"].as_str().unwrap();
        let err = Card::parse(text).expect_err(v["comment"].as_str().unwrap());
        assert_eq!(kind(&err), v["error"].as_str().unwrap(), "{}: {err}", v["comment"]);
    }
}
