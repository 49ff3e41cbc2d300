//! Media relay messages (`src/relay.rs`, `protocols/media-relay-v1.md`): allocation requests from
//! any peer (on a relay) and responses from any relay (on a client), JSON over libp2p; and relay
//! candidates (`relay:<PeerId>@ip:port`) inside invites.
//!
//! The same bytes go to every decoder. Checks: whatever decodes serializes and decodes back equal;
//! a candidate that parses formats back to a candidate that parses to the same relay and address.
#![no_main]

use hail::relay::{RelayRequest, RelayResponse, format_candidate, parse_candidate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<RelayRequest>(data) {
        let again: RelayRequest = serde_json::from_slice(&serde_json::to_vec(&request).unwrap()).unwrap();
        assert_eq!(again, request);
    }
    if let Ok(response) = serde_json::from_slice::<RelayResponse>(data) {
        let again: RelayResponse = serde_json::from_slice(&serde_json::to_vec(&response).unwrap()).unwrap();
        assert_eq!(again, response);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((relay, address)) = parse_candidate(text) {
            assert!(text.starts_with("relay:"));
            assert_eq!(parse_candidate(&format_candidate(&relay, address)), Some((relay, address)));
        }
    }
});
