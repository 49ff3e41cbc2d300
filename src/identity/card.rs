//! Contact cards: the short text you send a friend so they can add you (`protocols/card-v1.md`).
//!
//! ```text
//! hail1<base32 of: peer-id | display name | addresses | 4-byte checksum>
//! ```
//! The checksum catches a mistyped or lost character; white space and `-` are ignored when reading,
//! so a card survives being wrapped by a mail client.

use std::fmt;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use sha2::{Digest, Sha256};

use crate::identity::{PeerIdError, parse_peer_id};
use crate::name::{Name, NameError};

/// The text every version-1 card starts with.
pub const PREFIX: &str = "hail1";
/// Most addresses a card carries.
pub const MAX_ADDRESSES: usize = 8;
const CHECKSUM_LEN: usize = 4;

fn base32() -> data_encoding::Encoding {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.translate.from.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.translate.to.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.encoding().expect("a valid base32 specification")
}

/// A decoded contact card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// Who the card is for.
    pub peer_id: PeerId,
    /// The name its owner chose for themselves.
    pub name: Name,
    /// Where the node was reachable when the card was made (hints, not promises).
    pub addresses: Vec<Multiaddr>,
}

/// Why a card could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Does not start with `hail1`.
    #[error("not a hail contact card (cards start with \"{PREFIX}\")")]
    NotACard,
    /// A character outside the card alphabet.
    #[error("the card contains a character that cannot be in a card: {0:?}")]
    BadCharacter(char),
    /// The checksum does not match: a character was mistyped, lost or added.
    #[error("the card's checksum does not match: a character was mistyped, lost or added")]
    Checksum,
    /// The card ends before its fields do.
    #[error("the card is cut short")]
    Truncated,
    /// Bytes follow the last field.
    #[error("the card has extra data at the end")]
    TrailingData,
    /// The PeerId inside is not valid.
    #[error("the card's PeerId is invalid: {0}")]
    PeerId(PeerIdError),
    /// The display name inside is not valid.
    #[error("the card's name is invalid: {0}")]
    Name(NameError),
    /// The display name inside is not UTF-8.
    #[error("the card's name is not valid text")]
    NameEncoding,
    /// An address inside is not a valid multiaddr, or there are too many.
    #[error("the card's addresses are invalid")]
    Address,
}

impl Card {
    /// The binary payload (without the checksum), as specified in `protocols/card-v1.md`.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let peer = self.peer_id.to_bytes();
        out.push(peer.len() as u8);
        out.extend_from_slice(&peer);
        out.push(self.name.as_str().len() as u8);
        out.extend_from_slice(self.name.as_str().as_bytes());
        let addresses: Vec<Vec<u8>> = self
            .addresses
            .iter()
            .map(|a| a.to_vec())
            .filter(|a| a.len() <= u8::MAX as usize)
            .take(MAX_ADDRESSES)
            .collect();
        out.push(addresses.len() as u8);
        for a in addresses {
            out.push(a.len() as u8);
            out.extend_from_slice(&a);
        }
        out
    }

    /// Reads a card, ignoring white space and `-`, in either letter case.
    pub fn parse(text: &str) -> Result<Self, CardError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        let lower = compact.to_ascii_lowercase();
        let body = lower.strip_prefix(PREFIX).ok_or(CardError::NotACard)?;
        if let Some(c) = body.chars().find(|c| !matches!(c, 'a'..='z' | '2'..='7')) {
            return Err(CardError::BadCharacter(c));
        }
        // A lost or added character can leave a length that is not valid base32: that is a checksum
        // failure from the user's point of view.
        let bytes = base32().decode(body.as_bytes()).map_err(|_| CardError::Checksum)?;
        if bytes.len() < CHECKSUM_LEN {
            return Err(CardError::Truncated);
        }
        let (payload, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if checksum != &checksum_of(payload)[..] {
            return Err(CardError::Checksum);
        }
        Self::decode_payload(payload)
    }

    fn decode_payload(payload: &[u8]) -> Result<Self, CardError> {
        let mut r = Reader(payload);
        let peer_bytes = r.take_u8_prefixed()?;
        let peer_id = PeerId::from_bytes(peer_bytes).map_err(|_| CardError::PeerId(PeerIdError::Malformed))?;
        let peer_id = parse_peer_id(&peer_id.to_base58()).map_err(CardError::PeerId)?;
        let name_bytes = r.take_u8_prefixed()?;
        let name_text = std::str::from_utf8(name_bytes).map_err(|_| CardError::NameEncoding)?;
        let name = Name::parse(name_text).map_err(CardError::Name)?;
        let count = r.take_u8()? as usize;
        if count > MAX_ADDRESSES {
            return Err(CardError::Address);
        }
        let mut addresses = Vec::with_capacity(count);
        for _ in 0..count {
            let a = r.take_u8_prefixed()?;
            addresses.push(Multiaddr::try_from(a.to_vec()).map_err(|_| CardError::Address)?);
        }
        if !r.0.is_empty() {
            return Err(CardError::TrailingData);
        }
        Ok(Card { peer_id, name, addresses })
    }
}

impl fmt::Display for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = self.payload();
        let checksum = checksum_of(&bytes);
        bytes.extend_from_slice(&checksum);
        write!(f, "{PREFIX}{}", base32().encode(&bytes))
    }
}

impl std::str::FromStr for Card {
    type Err = CardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Card::parse(s)
    }
}

/// First four bytes of SHA-256 over the prefix and the payload.
fn checksum_of(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new().chain_update(PREFIX.as_bytes()).chain_update(payload).finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take_u8(&mut self) -> Result<u8, CardError> {
        let (&b, rest) = self.0.split_first().ok_or(CardError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn take_u8_prefixed(&mut self) -> Result<&'a [u8], CardError> {
        let len = self.take_u8()? as usize;
        if self.0.len() < len {
            return Err(CardError::Truncated);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn alice() -> Card {
        Card {
            peer_id: Identity::from_seed([0xa1; 32]).peer_id(),
            name: Name::parse("alice").unwrap(),
            addresses: vec!["/ip4/192.0.2.7/tcp/4001".parse().unwrap()],
        }
    }

    #[test]
    fn a_card_round_trips_through_its_text() {
        let card = alice();
        let text = card.to_string();
        assert!(text.starts_with("hail1"));
        assert_eq!(Card::parse(&text), Ok(card.clone()));
        assert_eq!(Card::parse(&text.to_uppercase().replacen("HAIL1", "hail1", 1)), Ok(card.clone()));
        let wrapped: String =
            text.chars().enumerate().flat_map(|(i, c)| if i % 20 == 19 { vec![c, '\n'] } else { vec![c] }).collect();
        assert_eq!(Card::parse(&wrapped), Ok(card));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let text = alice().to_string();
        let alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        for i in PREFIX.len()..text.len() {
            for c in alphabet.chars() {
                if text.as_bytes()[i] as char == c {
                    continue;
                }
                let mut typo = text.clone().into_bytes();
                typo[i] = c as u8;
                let typo = String::from_utf8(typo).unwrap();
                assert!(Card::parse(&typo).is_err(), "typo at {i} ({c}) was accepted");
            }
        }
    }

    #[test]
    fn a_lost_character_is_caught() {
        let text = alice().to_string();
        for i in PREFIX.len()..text.len() {
            let mut lost = text.clone();
            lost.remove(i);
            assert!(Card::parse(&lost).is_err(), "dropping character {i} was accepted");
        }
    }

    #[test]
    fn garbage_gives_specific_errors() {
        assert_eq!(Card::parse("12D3KooWabc"), Err(CardError::NotACard));
        assert_eq!(Card::parse("hail1abc!def"), Err(CardError::BadCharacter('!')));
        assert_eq!(Card::parse("hail1"), Err(CardError::Truncated));
    }
}
