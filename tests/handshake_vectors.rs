//! The call handshake against `protocols/vectors/handshake-v1.json`: fixed keys and nonce give
//! exactly the recorded messages, hashes and SAS.

use hail::crypto::handshake::{HandshakeParams, Initiator, Responder, commitment, prologue};
use hail::crypto::sas::{Sas, SasTable};
use hail::identity::Identity;
use serde_json::Value;

fn hex(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hex(v).try_into().unwrap()
}

#[test]
fn the_handshake_reproduces_the_vectors() {
    let v: Value = serde_json::from_str(include_str!("../protocols/vectors/handshake-v1.json")).unwrap();
    let (call_id, exporter): ([u8; 16], [u8; 32]) = (arr(&v["call_id"]), arr(&v["tls_exporter"]));
    assert_eq!(prologue(&call_id, &exporter), hex(&v["prologue"]));
    let nonce: [u8; 32] = arr(&v["initiator_nonce"]);
    assert_eq!(commitment(&nonce).to_vec(), hex(&v["commitment"]));

    let params = |seed: &str, eph: &str| {
        let id = Identity::from_seed(arr(&v[seed]));
        HandshakeParams {
            static_secret: id.noise_static_secret(),
            binding: id.noise_binding(),
            call_id,
            tls_exporter: exporter,
            expected_peer: None,
            fixed_ephemeral: Some(arr(&v[eph])),
        }
    };
    let (initiator, m1) =
        Initiator::start(params("initiator_identity_seed", "initiator_ephemeral_secret"), nonce).unwrap();
    assert_eq!(m1, hex(&v["message_1"]));
    let mut responder = Responder::new(params("responder_identity_seed", "responder_ephemeral_secret")).unwrap();
    let m2 = responder.read_message_1(&m1).unwrap();
    assert_eq!(m2, hex(&v["message_2"]));
    assert_eq!(responder.hash_after_message_2().unwrap(), hex(&v["handshake_hash_after_message_2"]));
    let (m3, caller) = initiator.read_message_2(&m2).unwrap();
    assert_eq!(m3, hex(&v["message_3"]));
    let callee = responder.read_message_3(&m3).unwrap();
    for side in [&caller, &callee] {
        assert_eq!(side.handshake_hash, hex(&v["handshake_hash_final"]));
        let indices: Vec<u8> = v["sas_indices"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u8).collect();
        assert_eq!(side.sas, Sas(indices.clone().try_into().unwrap()));
        assert_eq!(side.sas.text_in(SasTable::V1), v["sas_text"].as_str().unwrap());
        assert_eq!(
            Sas::derive(&hex(&v["handshake_hash_after_message_2"]), &nonce),
            side.sas,
            "SAS = HKDF(hash after message 2, nonce)"
        );
        assert_eq!(SasTable::V1.emoji(indices[0]).glyph, side.sas.emoji_in(SasTable::V1)[0].glyph);
    }
}
