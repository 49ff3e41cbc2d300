//! The node's identity: one Ed25519 key, kept in the home, whose libp2p [`PeerId`] is the node's
//! name in everyone's address book.
//!
//! The Noise static key (X25519) that authenticates calls is *derived* from the same secret seed with
//! HKDF and *bound* to the PeerId by an Ed25519 signature that travels in the handshake (see
//! `docs/architecture.md`, "Identity"). A verifier needs nothing but the PeerId it already pins.

pub mod card;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use libp2p_identity::{Keypair, PeerId, PublicKey};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use card::{Card, CardError};

/// File name of the key inside the node's home.
pub const KEY_FILE: &str = "identity.key";

/// First line of the key file: names the format so a future version can migrate it.
const KEY_FILE_HEADER: &str = "# hail node identity v1 - keep this file secret; it is who you are.";
const KEY_LINE_PREFIX: &str = "ed25519-seed:";

/// HKDF parameters for the Noise static key. Changing them changes every node's Noise key.
const NOISE_KEY_SALT: &[u8] = b"hail identity v1";
const NOISE_KEY_INFO: &[u8] = b"hail noise x25519 static key v1";

/// Domain separation for the signature that binds a Noise static key to a PeerId.
const NOISE_BINDING_CONTEXT: &[u8] = b"hail noise static key binding v1:";

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file could not be read or written.
    #[error("cannot access the identity key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The key file exists but does not hold a key this version understands. It is left untouched.
    #[error(
        "the identity key {path} is damaged ({reason}); it was left untouched. Restore it from a backup, \
         or move it away to start over with a new identity (contacts will have to add you again)"
    )]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The node's long-term key pair.
#[derive(Clone)]
pub struct Identity {
    keypair: Keypair,
    seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("peer_id", &self.peer_id()).finish_non_exhaustive()
    }
}

impl Identity {
    /// An identity from a 32-byte Ed25519 seed (tests and vectors use fixed seeds).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut copy = seed;
        let keypair = Keypair::ed25519_from_bytes(&mut copy).expect("any 32 bytes are an Ed25519 seed");
        Identity { keypair, seed: Zeroizing::new(seed) }
    }

    /// A fresh random identity.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self::from_seed(seed)
    }

    /// Loads the key from `home`, creating it (mode 0600) on first use. Returns the identity and
    /// whether it was just created.
    pub fn load_or_create(home: &Path) -> Result<(Self, bool), IdentityError> {
        let path = home.join(KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                tighten_permissions(&path);
                Ok((Self::parse_key_file(&path, &text)?, false))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = Self::generate();
                identity.write_key_file(&path).map_err(|source| IdentityError::Io { path, source })?;
                Ok((identity, true))
            }
            Err(source) => Err(IdentityError::Io { path, source }),
        }
    }

    fn parse_key_file(path: &Path, text: &str) -> Result<Self, IdentityError> {
        let corrupt = |reason| IdentityError::Corrupt { path: path.to_owned(), reason };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| corrupt("no key line"))?;
        let hex = line.strip_prefix(KEY_LINE_PREFIX).ok_or_else(|| corrupt("unknown key type"))?;
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| corrupt("the key is not hexadecimal"))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| corrupt("the key is not 32 bytes"))?;
        Ok(Self::from_seed(seed))
    }

    /// Writes the key atomically: a 0600 temporary file, fsync, rename, fsync of the directory.
    fn write_key_file(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("key.tmp");
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        let body = Zeroizing::new(format!(
            "{KEY_FILE_HEADER}\n{KEY_LINE_PREFIX}{}\n",
            data_encoding::HEXLOWER.encode(&self.seed[..])
        ));
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The libp2p key pair (the swarm uses it).
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The secret half of the Noise static key (X25519), derived from the seed.
    pub fn noise_static_secret(&self) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(NOISE_KEY_SALT), &self.seed[..]);
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(NOISE_KEY_INFO, &mut okm[..]).expect("32 bytes is a valid HKDF-SHA256 length");
        okm
    }

    /// The public half of the Noise static key.
    pub fn noise_static_public(&self) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(*self.noise_static_secret());
        x25519_dalek::PublicKey::from(&secret).to_bytes()
    }

    /// Proof that `noise_static_public` belongs to this PeerId, carried in the Noise handshake.
    pub fn noise_binding(&self) -> NoiseBinding {
        let noise_public = self.noise_static_public();
        let signature = self.keypair.sign(&binding_message(&noise_public)).expect("Ed25519 signing cannot fail");
        NoiseBinding { identity_public: self.keypair.public().encode_protobuf(), signature }
    }
}

/// The signed statement "this X25519 key speaks for this PeerId".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseBinding {
    /// The libp2p public key (protobuf encoding), from which the PeerId follows.
    pub identity_public: Vec<u8>,
    /// Ed25519 signature over the binding context and the Noise static public key.
    pub signature: Vec<u8>,
}

/// Why a [`NoiseBinding`] was refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum BindingError {
    /// The public key is not a valid libp2p key.
    #[error("the peer's identity key is malformed")]
    MalformedKey,
    /// The signature does not cover the Noise key that was actually used.
    #[error("the peer's identity signature does not match its handshake key")]
    BadSignature,
}

impl NoiseBinding {
    /// Checks the binding against the Noise static key the handshake authenticated, and returns the
    /// PeerId it proves.
    pub fn verify(&self, noise_static_public: &[u8; 32]) -> Result<PeerId, BindingError> {
        let public = PublicKey::try_decode_protobuf(&self.identity_public).map_err(|_| BindingError::MalformedKey)?;
        if !public.verify(&binding_message(noise_static_public), &self.signature) {
            return Err(BindingError::BadSignature);
        }
        Ok(public.to_peer_id())
    }
}

fn binding_message(noise_public: &[u8; 32]) -> Vec<u8> {
    [NOISE_BINDING_CONTEXT, &noise_public[..]].concat()
}

/// A key file readable by others is fixed to 0600, with a warning.
fn tighten_permissions(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "identity key was readable by others; setting it to 0600");
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
    }
}

/// Checks that a string is a well-formed Ed25519 PeerId, as far as a PeerId can be checked: it parses
/// as a multihash and carries an Ed25519 public key that is a valid curve point. (A base58 PeerId has no
/// checksum; a contact card does.)
pub fn parse_peer_id(text: &str) -> Result<PeerId, PeerIdError> {
    let peer: PeerId = text.trim().parse().map_err(|_| PeerIdError::Malformed)?;
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return Err(PeerIdError::NotEd25519);
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest()).map_err(|_| PeerIdError::InvalidKey)?;
    if public.try_into_ed25519().is_err() {
        return Err(PeerIdError::NotEd25519);
    }
    Ok(peer)
}

/// Why a PeerId was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum PeerIdError {
    /// Not base58, or not a multihash.
    #[error("not a valid PeerId (check for a mistyped or missing character)")]
    Malformed,
    /// A well-formed multihash whose key is not a valid Ed25519 point: almost always a typo.
    #[error("not a valid PeerId: its key is damaged (check for a mistyped character)")]
    InvalidKey,
    /// A PeerId of another key type (RSA, secp256k1...); hail nodes use Ed25519.
    #[error("not a hail PeerId: hail nodes use Ed25519 keys (PeerIds starting with 12D3KooW)")]
    NotEd25519,
}

/// A PeerId in JSON as its base58 text (the contacts file, the control protocol, media stats).
pub(crate) mod peer_id_text {
    use libp2p_identity::PeerId;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(peer: &PeerId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&peer.to_base58())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| D::Error::custom("invalid PeerId"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_key_is_deterministic_and_distinct_from_the_identity_seed() {
        let a = Identity::from_seed([7; 32]);
        let b = Identity::from_seed([7; 32]);
        assert_eq!(a.noise_static_public(), b.noise_static_public());
        assert_ne!(&a.noise_static_secret()[..], &[7u8; 32][..]);
        assert_ne!(a.noise_static_public(), Identity::from_seed([8; 32]).noise_static_public());
    }

    #[test]
    fn binding_verifies_for_its_own_key_only() {
        let id = Identity::from_seed([1; 32]);
        let binding = id.noise_binding();
        assert_eq!(binding.verify(&id.noise_static_public()), Ok(id.peer_id()));
        let other = Identity::from_seed([2; 32]).noise_static_public();
        assert_eq!(binding.verify(&other), Err(BindingError::BadSignature));
        let mut garbled = binding.clone();
        garbled.identity_public[5] ^= 0xff;
        assert!(garbled.verify(&id.noise_static_public()).is_err());
    }

    #[test]
    fn peer_id_parser_accepts_real_ids_and_refuses_damaged_ones() {
        let id = Identity::from_seed([3; 32]).peer_id().to_base58();
        assert!(parse_peer_id(&id).is_ok());
        assert_eq!(parse_peer_id("12D3KooW"), Err(PeerIdError::Malformed));
        assert_eq!(parse_peer_id("hello bob"), Err(PeerIdError::Malformed));
        let truncated = &id[..id.len() - 1];
        assert!(parse_peer_id(truncated).is_err());
    }
}
