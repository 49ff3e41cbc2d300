//! DHT peer records (`src/discovery/record.rs`, `protocols/peer-record-v1.md`): values any DHT node
//! may hand us.
//!
//! First byte even: `key length (1) || key || value`, verified as found. Odd: the rest lists
//! addresses (`len (1) || multiaddr bytes`, invalid ones skipped), signed by a fixed key and
//! verified under that key.
//! Checks: an accepted record is within the limits and names the peer of its key; a record we sign
//! verifies to exactly the addresses signed (up to the cap), and under nobody else's key.
#![no_main]

use hail::discovery::record::{MAX_RECORD_ADDRESSES, MAX_RECORD_BYTES, record_key, sign_record, verify_record};
use hail_fuzz::{ALICE, BOB, Input};
use libfuzzer_sys::fuzz_target;
use multiaddr::Multiaddr;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    if input.u8() & 1 == 0 {
        let key_len = input.u8() as usize;
        let key = input.take(key_len);
        let value = input.rest();
        if let Ok(record) = verify_record(key, value) {
            assert!(value.len() <= MAX_RECORD_BYTES);
            assert!(record.addresses.len() <= MAX_RECORD_ADDRESSES);
            assert_eq!(record_key(&record.peer_id).as_ref(), key);
        }
        // The same value under the fixed peer's key.
        if let Ok(record) = verify_record(record_key(&ALICE.peer_id()).as_ref(), value) {
            assert_eq!(record.peer_id, ALICE.peer_id());
        }
    } else {
        let mut addresses = Vec::new();
        while !input.is_empty() {
            let len = input.u8() as usize;
            if let Ok(a) = Multiaddr::try_from(input.take(len).to_vec()) {
                addresses.push(a);
            }
        }
        let value = sign_record(ALICE.keypair(), addresses.clone());
        match verify_record(record_key(&ALICE.peer_id()).as_ref(), &value) {
            Ok(record) => {
                addresses.truncate(MAX_RECORD_ADDRESSES);
                assert_eq!(record.addresses, addresses);
                assert_eq!(record.peer_id, ALICE.peer_id());
            }
            Err(e) => assert!(value.len() > MAX_RECORD_BYTES, "our own record refused: {e}"),
        }
        assert!(verify_record(record_key(&BOB.peer_id()).as_ref(), &value).is_err());
    }
});
