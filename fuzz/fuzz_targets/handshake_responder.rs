//! The callee's side of the call handshake (`src/crypto/handshake.rs`, `protocols/handshake-v1.md`)
//! reading messages 1 and 3 from whoever opened the call stream. Keys, ephemerals and the nonce are
//! the fixed ones of `protocols/vectors/handshake-v1.json`.
//!
//! Mode (first byte % 4):
//! - 0: the rest is message 1. Accepted only if it is an ephemeral key and a version-1 payload of
//!   33 bytes.
//! - 1: the rest is message 3 after the genuine message 1. Accepted only if it is the genuine
//!   message 3 (nobody else can encrypt to the session).
//! - 2: the rest is message 3's payload, sent in a valid Noise session by a fixed initiator that
//!   committed to the fixed nonce: reaches the binding and nonce decoders. Accepted only as Alice,
//!   with the genuine emoji.
//! - 3: the rest is message 1's payload, in a valid Noise message. Accepted iff it is `01` and a
//!   32-byte commitment.
#![no_main]

use std::sync::LazyLock;

use hail::crypto::handshake::{Established, Initiator, MAX_MESSAGE, Responder, VERSION, commitment};
use hail_fuzz::{ALICE, BOB, INITIATOR_EPHEMERAL, Input, NONCE, RESPONDER_EPHEMERAL, params, raw_noise};
use libfuzzer_sys::fuzz_target;

fn responder() -> Responder {
    Responder::new(params(&BOB, &ALICE, RESPONDER_EPHEMERAL)).expect("a responder")
}

/// The genuine message 1, message 3 and the callee's result.
static GENUINE: LazyLock<(Vec<u8>, Vec<u8>, Established)> = LazyLock::new(|| {
    let (i, m1) = Initiator::start(params(&ALICE, &BOB, INITIATOR_EPHEMERAL), NONCE).unwrap();
    let mut r = responder();
    let m2 = r.read_message_1(&m1).unwrap();
    let (m3, _) = i.read_message_2(&m2).unwrap();
    let done = r.read_message_3(&m3).unwrap();
    (m1, m3, done)
});

fuzz_target!(|data: &[u8]| {
    let (m1, m3, genuine) = &*GENUINE;
    let mut input = Input(data);
    let mode = input.u8() % 4;
    let rest = input.rest();
    let mut r = responder();
    match mode {
        0 => {
            if r.read_message_1(rest).is_ok() {
                assert_eq!(rest.len(), 32 + 33);
                assert_eq!(rest[32], VERSION);
                assert!(r.read_message_1(rest).is_err(), "message 1 twice");
            }
        }
        1 => {
            r.read_message_1(m1).unwrap();
            if let Ok(done) = r.read_message_3(rest) {
                assert_eq!(rest, &m3[..]);
                assert_eq!(done.sas, genuine.sas);
            }
        }
        2 => {
            let mut alice = raw_noise(&ALICE, INITIATOR_EPHEMERAL, true);
            let mut buf = vec![0u8; MAX_MESSAGE];
            let payload1 = [&[VERSION][..], &commitment(&NONCE)[..]].concat();
            let n = alice.write_message(&payload1, &mut buf).unwrap();
            let m2 = r.read_message_1(&buf[..n]).unwrap();
            alice.read_message(&m2, &mut buf).unwrap();
            let Ok(n) = alice.write_message(rest, &mut buf) else { return };
            if let Ok(done) = r.read_message_3(&buf[..n]) {
                assert_eq!(done.remote_peer, ALICE.peer_id());
                assert_eq!(done.sas, genuine.sas);
                assert_eq!(&rest[rest.len() - 32..], &NONCE[..]);
            }
        }
        _ => {
            let mut alice = raw_noise(&ALICE, INITIATOR_EPHEMERAL, true);
            let mut buf = vec![0u8; MAX_MESSAGE];
            let Ok(n) = alice.write_message(rest, &mut buf) else { return };
            let accepted = r.read_message_1(&buf[..n]).is_ok();
            assert_eq!(accepted, rest.len() == 33 && rest[0] == VERSION);
        }
    }
});
