//! Reflect answers (`src/transport/reflect.rs`, `protocols/reflect-v1.md`): what a reflector (any
//! public hail node) answers about our observed address.
//!
//! The answer is read twice: against the nonce of `protocols/vectors/reflect-v1.json`, and against
//! its own first 16 bytes (so the fuzzer is past the nonce check). Checks: an accepted answer is
//! exactly the encoding of the address it yields, never port 0 or an unspecified IP; an answer to
//! another nonce is refused.
#![no_main]

use hail::transport::reflect::{decode_answer, encode_answer, request_header};
use libfuzzer_sys::fuzz_target;

const NONCE: [u8; 16] = [0x5a; 16];

fuzz_target!(|data: &[u8]| {
    let own: [u8; 16] = match data.get(..16) {
        Some(n) => n.try_into().unwrap(),
        None => [0; 16],
    };
    for nonce in [NONCE, own] {
        if let Ok(address) = decode_answer(&nonce, data) {
            assert_eq!(encode_answer(&nonce, address), data);
            assert_ne!(address.port(), 0);
            assert!(!address.ip().is_unspecified());
            let mut other = nonce;
            other[0] ^= 1;
            assert!(decode_answer(&other, data).is_err());
        }
    }
    assert_eq!(request_header(&own)[5..], own);
});
