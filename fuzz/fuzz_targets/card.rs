//! Contact cards (`src/identity/card.rs`, `protocols/card-v1.md`): text a user pastes from anyone.
//!
//! First byte even: the rest is the card text. Odd: the rest is a card payload, wrapped with a
//! valid checksum, so the field decoder behind the checksum is reached.
//! Checks: an accepted card prints as a card that reads back equal, and a payload that decodes
//! is exactly the payload the card encodes (one encoding per card).
#![no_main]

use hail::identity::card::{Card, MAX_ADDRESSES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let wrapped = mode & 1 == 1;
    let text = if wrapped {
        hail_fuzz::card_text(rest)
    } else {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_owned(),
            Err(_) => return,
        }
    };
    let Ok(card) = Card::parse(&text) else { return };
    assert!(card.addresses.len() <= MAX_ADDRESSES);
    let printed = card.to_string();
    assert_eq!(Card::parse(&printed).as_ref(), Ok(&card), "{printed}");
    if wrapped {
        assert_eq!(card.payload(), rest, "a decoded payload encodes back to itself");
        assert_eq!(printed, text);
    }
});
