//! The caller's side of the call handshake (`src/crypto/handshake.rs`, `protocols/handshake-v1.md`)
//! reading message 2 from whoever answered on the call's QUIC connection. Keys, ephemerals and the
//! nonce are the fixed ones of `protocols/vectors/handshake-v1.json`.
//!
//! Mode (first byte % 2):
//! - 0: the rest is message 2. Accepted only if it is the genuine message 2.
//! - 1: the rest is message 2's payload, in a valid Noise session with a fixed responder (Bob's
//!   keys): reaches the binding decoder. Accepted only as Bob, and then the message 3 it returns
//!   decrypts for Bob to Alice's binding and the committed nonce.
#![no_main]

use std::sync::LazyLock;

use hail::crypto::handshake::{Initiator, MAX_MESSAGE, Responder};
use hail_fuzz::{
    ALICE, BOB, INITIATOR_EPHEMERAL, Input, NONCE, RESPONDER_EPHEMERAL, encode_binding, params, raw_noise,
};
use libfuzzer_sys::fuzz_target;

fn initiator() -> (Initiator, Vec<u8>) {
    Initiator::start(params(&ALICE, &BOB, INITIATOR_EPHEMERAL), NONCE).expect("an initiator")
}

/// The genuine message 2.
static GENUINE_M2: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let (_, m1) = initiator();
    let mut r = Responder::new(params(&BOB, &ALICE, RESPONDER_EPHEMERAL)).unwrap();
    r.read_message_1(&m1).unwrap()
});

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.u8() % 2;
    let rest = input.rest();
    let (i, m1) = initiator();
    if mode == 0 {
        if i.read_message_2(rest).is_ok() {
            assert_eq!(rest, &GENUINE_M2[..]);
        }
        return;
    }
    let mut bob = raw_noise(&BOB, RESPONDER_EPHEMERAL, false);
    let mut buf = vec![0u8; MAX_MESSAGE];
    bob.read_message(&m1, &mut buf).unwrap();
    let Ok(n) = bob.write_message(rest, &mut buf) else { return };
    if let Ok((m3, done)) = i.read_message_2(&buf[..n]) {
        assert_eq!(done.remote_peer, BOB.peer_id());
        let n = bob.read_message(&m3, &mut buf).expect("our message 3 decrypts for the responder");
        assert_eq!(&buf[..n], &[encode_binding(&ALICE), NONCE.to_vec()].concat()[..]);
    }
});
