//! The short authentication string: four emoji derived from the handshake (`protocols/sas-v1.md`),
//! and the long safety number of a pair of identities.

use hkdf::Hkdf;
use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// The emoji tables, one per version: 256 entries each, one per byte value. Every version stays
/// readable so that old peers can still compare (`protocols/sas-v1.md`, "Table versions").
const TABLE_V1_TEXT: &str = include_str!("../../protocols/sas-emoji-v1.txt");
const TABLE_V2_TEXT: &str = include_str!("../../protocols/sas-emoji-v2.txt");

const SAS_SALT: &[u8] = b"hail sas v1";
const SAS_INFO: &[u8] = b"hail sas emoji v1";

/// One entry of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emoji {
    /// The emoji itself.
    pub glyph: &'static str,
    /// Its English name (terminals differ; names do not).
    pub name: &'static str,
}

/// A version of the emoji table. Both sides of a call render the same four bytes with the table
/// they agreed on in the invite (`protocols/signaling-v1.md`): the bytes, hence the security, do
/// not depend on the table; only how easy the emoji are to tell apart does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SasTable {
    /// `sas-emoji-v1.txt`: the first table; it has look-alike pairs (truck/lorry, …).
    V1,
    /// `sas-emoji-v2.txt`: at most one emoji of each look-alike group (`sas-emoji-lookalikes.txt`).
    V2,
}

impl SasTable {
    /// Every table this hail can render, oldest first.
    pub const ALL: [SasTable; 2] = [SasTable::V1, SasTable::V2];
    /// The newest table this hail can render.
    pub const LATEST: SasTable = SasTable::V2;
    /// Most versions an offer may list (an invite with more is malformed).
    pub const MAX_OFFER: usize = 16;

    /// The version number on the wire.
    pub fn version(self) -> u32 {
        match self {
            SasTable::V1 => 1,
            SasTable::V2 => 2,
        }
    }

    /// The table of a wire version, if this hail has it.
    pub fn from_version(version: u32) -> Option<SasTable> {
        SasTable::ALL.into_iter().find(|t| t.version() == version)
    }

    /// What a side whose newest table is `self` offers: every version from 1 up to `self`.
    pub fn offer(self) -> Vec<u32> {
        SasTable::ALL.into_iter().filter(|t| *t <= self).map(SasTable::version).collect()
    }

    /// The table a side whose newest table is `self` picks from a peer's `offered` versions: the
    /// highest one both have; `None` when they have none in common. Unknown (newer) versions in
    /// the offer are skipped.
    pub fn pick(self, offered: &[u32]) -> Option<SasTable> {
        offered.iter().filter_map(|v| SasTable::from_version(*v)).filter(|t| *t <= self).max()
    }

    /// The emoji for byte value `index`.
    pub fn emoji(self, index: u8) -> Emoji {
        self.entries()[index as usize]
    }

    fn entries(self) -> &'static [Emoji; 256] {
        static V1: std::sync::OnceLock<[Emoji; 256]> = std::sync::OnceLock::new();
        static V2: std::sync::OnceLock<[Emoji; 256]> = std::sync::OnceLock::new();
        match self {
            SasTable::V1 => V1.get_or_init(|| parse_table(TABLE_V1_TEXT)),
            SasTable::V2 => V2.get_or_init(|| parse_table(TABLE_V2_TEXT)),
        }
    }
}

/// Parses a table file compiled into the binary (`tests/sas_emoji_table.rs` and the tests below
/// check both files, so a malformed one never ships).
fn parse_table(text: &'static str) -> [Emoji; 256] {
    let mut out = [Emoji { glyph: "", name: "" }; 256];
    let mut filled = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let fields: Vec<&'static str> = line.split('\t').collect();
        let index: u8 = fields[0].parse().expect("the table's index column is a byte");
        out[index as usize] = Emoji { glyph: fields[2], name: fields[3] };
        filled += 1;
    }
    assert_eq!(filled, 256, "a SAS table has 256 entries");
    out
}

/// Four table indices: what both sides must see the same. How they look depends on the table the
/// call agreed on: render them with [`Sas::emoji_in`] or [`Sas::text_in`].
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

    /// The four emoji in `table`.
    pub fn emoji_in(&self, table: SasTable) -> [Emoji; 4] {
        self.0.map(|i| table.emoji(i))
    }

    /// The four emoji in `table`, for people: `🦊 fox  🌵 cactus  …`.
    pub fn text_in(&self, table: SasTable) -> String {
        let parts: Vec<String> = self.emoji_in(table).iter().map(|e| format!("{} {}", e.glyph, e.name)).collect();
        parts.join("  ")
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
    fn every_table_has_256_distinct_single_code_point_emoji_and_names() {
        for table in SasTable::ALL {
            let t = table.entries();
            let glyphs: std::collections::HashSet<_> = t.iter().map(|e| e.glyph).collect();
            let names: std::collections::HashSet<_> = t.iter().map(|e| e.name).collect();
            assert_eq!(glyphs.len(), 256, "{table:?}");
            assert_eq!(names.len(), 256, "{table:?}");
            assert!(t.iter().all(|e| e.glyph.chars().count() == 1 && !e.name.is_empty()), "{table:?}");
        }
    }

    #[test]
    fn each_table_renders_the_same_bytes_its_own_way() {
        let sas = Sas([0, 42, 151, 255]);
        let v1: Vec<&str> = sas.emoji_in(SasTable::V1).iter().map(|e| e.name).collect();
        let v2: Vec<&str> = sas.emoji_in(SasTable::V2).iter().map(|e| e.name).collect();
        assert_eq!(v1, ["mouse", "shrimp", "truck", "wave"]);
        assert_eq!(v2, ["gorilla", "octopus", "snowman", "sponge"]);
        assert_eq!(sas.text_in(SasTable::V1), "🐁 mouse  🦐 shrimp  🚚 truck  🌊 wave");
        assert_eq!(sas.text_in(SasTable::V2), "🦍 gorilla  🐙 octopus  ⛄ snowman  🧽 sponge");
        assert_eq!(SasTable::V2.emoji(42).glyph, "🐙");
    }

    #[test]
    fn versions_offers_and_picks() {
        assert_eq!(SasTable::from_version(1), Some(SasTable::V1));
        assert_eq!(SasTable::from_version(2), Some(SasTable::V2));
        assert_eq!(SasTable::from_version(0), None);
        assert_eq!(SasTable::from_version(3), None);
        assert_eq!(SasTable::V1.offer(), [1]);
        assert_eq!(SasTable::LATEST.offer(), [1, 2]);
        assert_eq!(SasTable::V2.pick(&[1, 2]), Some(SasTable::V2));
        assert_eq!(SasTable::V2.pick(&[2, 1, 7]), Some(SasTable::V2), "unknown versions are skipped");
        assert_eq!(SasTable::V1.pick(&[1, 2]), Some(SasTable::V1));
        assert_eq!(SasTable::V2.pick(&[1]), Some(SasTable::V1));
        assert_eq!(SasTable::V2.pick(&[3, 9]), None);
        assert_eq!(SasTable::V2.pick(&[]), None);
    }

    #[test]
    fn sas_depends_on_hash_and_nonce() {
        let a = Sas::derive(&[1; 32], &[2; 32]);
        assert_eq!(a, Sas::derive(&[1; 32], &[2; 32]));
        assert_ne!(a, Sas::derive(&[1; 32], &[3; 32]));
        assert_ne!(a, Sas::derive(&[9; 32], &[2; 32]));
        assert_eq!(a.text_in(SasTable::V2).split("  ").count(), 4);
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
