//! The reflect request and answers against `protocols/vectors/reflect-v1.json`, and a real reflect
//! exchange between two call endpoints on loopback.

use hail::transport::reflect::{decode_answer, encode_answer, reflect, request_header};
use serde_json::Value;

fn hex(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap()
}

#[test]
fn the_header_and_answers_match_the_vectors() {
    let v: Value = serde_json::from_str(include_str!("../protocols/vectors/reflect-v1.json")).unwrap();
    let nonce: [u8; 16] = hex(&v["nonce"]).try_into().unwrap();
    assert_eq!(request_header(&nonce), hex(&v["request"]));
    for a in v["answers"].as_array().unwrap() {
        let observed = a["observed"].as_str().unwrap().parse().unwrap();
        assert_eq!(encode_answer(&nonce, observed), hex(&a["answer"]));
        assert_eq!(decode_answer(&nonce, &hex(&a["answer"])).unwrap(), observed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_endpoint_tells_the_asker_where_its_packets_come_from() {
    let reflector = hail::transport::endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let asker = hail::transport::endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let at = reflector.local_addr().unwrap();
    let serve = tokio::spawn(async move {
        let incoming = reflector.accept().await.unwrap();
        hail::transport::channel::accept_call_stream(incoming).await.map(|o| o.is_none())
    });
    let seen = reflect(&asker, at).await.unwrap();
    assert_eq!(seen, asker.local_addr().unwrap(), "on loopback the reflexive address is the endpoint's own");
    assert_eq!(serve.await.unwrap(), Ok(true), "answered as a reflect request, not taken for a call");
    // Nobody there: a clear error within the timeout, not a hang.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = reflect(&asker, silent.local_addr().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("did not answer"), "{err}");
}
