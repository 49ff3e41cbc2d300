//! The short authentication string: four emoji derived from the handshake (`protocols/sas-v1.md`),
//! and the long safety number of a pair of identities.

use std::fmt;

use hkdf::Hkdf;
use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// The emoji table (`protocols/sas-emoji-v1.txt`): 256 entries, one per byte value.
const TABLE_TEXT: &str = include_str!("../../protocols/sas-emoji-v1.txt");

const SAS_SALT: &[u8] = b"hail sas v1";
const SAS_INFO: &[u8] = b"hail sas emoji v1";

/// One entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emoji {
    /// The emoji itself.
    pub glyph: &'static str,
    /// Its English name (terminals differ; names do not).
    pub name: &'static str,
}

/// The emoji for byte value `index`.
pub fn emoji(index: u8) -> Emoji {
    table()[index as usize]
}

fn table() -> &'static [Emoji; 256] {
    static TABLE: std::sync::OnceLock<[Emoji; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut out = [Emoji { glyph: "", name: "" }; 256];
        let mut filled = 0;
        for line in TABLE_TEXT.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let fields: Vec<&'static str> = line.split('\t').collect();
            let index: usize = fields[0].parse().expect("the table's index column is a number");
            out[index] = Emoji { glyph: fields[2], name: fields[3] };
            filled += 1;
        }
        assert_eq!(filled, 256, "the SAS table has 256 entries");
        out
    })
}

/// Four table indices: what both sides must see the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sas(pub [u8; 4]);

impl Sas {
    /// `HKDF-SHA256(salt "hail sas v1", ikm = handshake hash after message 2 || initiator nonce,
    /// info "hail sas emoji v1")`, first 4 bytes.
    pub fn derive(handshake_hash_after_message_2: &[u8], initiator_nonce: &[u8; 32]) -> Sas {
        let ikm = [handshake_hash_after_message_2, &initiator_nonce[..]].concat();
        let hk = Hkdf::<Sha256>::new(Some(SAS_SALT), &ikm);
        let mut out = [0u8; 4];
        hk.expand(SAS_INFO, &mut out).expect("4 bytes is a valid HKDF length");
        Sas(out)
    }

    /// The four emoji.
    pub fn emoji(&self) -> [Emoji; 4] {
        self.0.map(emoji)
    }
}

impl fmt::Display for Sas {
    /// `🦊 fox  🌵 cactus  …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.emoji().iter().map(|e| format!("{} {}", e.glyph, e.name)).collect();
        f.write_str(&parts.join("  "))
    }
}

/// The safety number of two identities (Signal-style): 60 digits, the same on both sides, to compare
/// once out of band. Each side's half is 30 digits from 5200 rounds of SHA-512 over its PeerId; the
/// halves are sorted so both sides print the same number.
pub fn safety_number(a: &PeerId, b: &PeerId) -> String {
    let mut halves = [fingerprint(a), fingerprint(b)];
    halves.sort();
    let digits = halves.concat();
    digits.as_bytes().chunks(5).map(|c| std::str::from_utf8(c).expect("ASCII digits")).collect::<Vec<_>>().join(" ")
}

fn fingerprint(peer: &PeerId) -> String {
    let id = peer.to_bytes();
    let mut hash: Vec<u8> = [&[0u8, 0u8][..], &id].concat();
    for _ in 0..5200 {
        hash = Sha512::new().chain_update(&hash).chain_update(&id).finalize().to_vec();
    }
    hash[..30]
        .chunks(5)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64) % 100_000;
            format!("{n:05}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn the_table_has_256_distinct_emoji_and_names() {
        let t = table();
        let glyphs: std::collections::HashSet<_> = t.iter().map(|e| e.glyph).collect();
        let names: std::collections::HashSet<_> = t.iter().map(|e| e.name).collect();
        assert_eq!(glyphs.len(), 256);
        assert_eq!(names.len(), 256);
        assert!(t.iter().all(|e| e.glyph.chars().count() == 1 && !e.name.is_empty()));
    }

    #[test]
    fn sas_depends_on_hash_and_nonce() {
        let a = Sas::derive(&[1; 32], &[2; 32]);
        assert_eq!(a, Sas::derive(&[1; 32], &[2; 32]));
        assert_ne!(a, Sas::derive(&[1; 32], &[3; 32]));
        assert_ne!(a, Sas::derive(&[9; 32], &[2; 32]));
        assert_eq!(a.to_string().split("  ").count(), 4);
    }

    #[test]
    fn the_safety_number_is_symmetric_and_60_digits() {
        let (a, b, c) = (
            Identity::from_seed([1; 32]).peer_id(),
            Identity::from_seed([2; 32]).peer_id(),
            Identity::from_seed([3; 32]).peer_id(),
        );
        let n = safety_number(&a, &b);
        assert_eq!(n, safety_number(&b, &a));
        assert_ne!(n, safety_number(&a, &c));
        assert_eq!(n.chars().filter(char::is_ascii_digit).count(), 60);
        assert_eq!(n.split(' ').count(), 12);
    }
}
