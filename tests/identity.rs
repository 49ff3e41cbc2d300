//! The node's key on disk, and the identity vectors from `protocols/vectors/identity-v1.json`.

use std::os::unix::fs::PermissionsExt;

use hail::identity::{Identity, IdentityError, KEY_FILE};
use serde_json::Value;

#[test]
fn the_key_is_created_once_private_and_reused() {
    let home = tempfile::tempdir().unwrap();
    let (first, created) = Identity::load_or_create(home.path()).unwrap();
    assert!(created);
    let mode = std::fs::metadata(home.path().join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let (second, created) = Identity::load_or_create(home.path()).unwrap();
    assert!(!created);
    assert_eq!(first.peer_id(), second.peer_id());
    assert_eq!(first.noise_static_public(), second.noise_static_public());
}

#[test]
fn a_key_readable_by_others_is_made_private_again() {
    let home = tempfile::tempdir().unwrap();
    Identity::load_or_create(home.path()).unwrap();
    let path = home.path().join(KEY_FILE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    Identity::load_or_create(home.path()).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_damaged_key_is_an_error_and_is_never_overwritten() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join(KEY_FILE);
    for garbage in ["", "ed25519-seed:zz\n", "ed25519-seed:0102\n", "rsa:00\n", "\u{0}\u{1}binary"] {
        std::fs::write(&path, garbage).unwrap();
        match Identity::load_or_create(home.path()) {
            Err(IdentityError::Corrupt { .. }) => {}
            other => panic!("{garbage:?}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), garbage, "the damaged key was left as it was");
    }
    let message = Identity::load_or_create(home.path()).unwrap_err().to_string();
    assert!(message.contains("left untouched") && message.contains("backup"), "{message}");
}

#[test]
fn identity_vectors_hold() {
    let vectors: Value = serde_json::from_str(include_str!("../protocols/vectors/identity-v1.json")).unwrap();
    let list = vectors["vectors"].as_array().unwrap();
    assert!(!list.is_empty());
    for v in list {
        let seed: [u8; 32] =
            data_encoding::HEXLOWER.decode(v["seed"].as_str().unwrap().as_bytes()).unwrap().try_into().unwrap();
        let id = Identity::from_seed(seed);
        assert_eq!(id.peer_id().to_base58(), v["peer_id"].as_str().unwrap());
        assert_eq!(
            data_encoding::HEXLOWER.encode(&id.noise_static_public()),
            v["noise_static_public"].as_str().unwrap()
        );
        let binding = id.noise_binding();
        assert_eq!(binding.verify(&id.noise_static_public()).unwrap(), id.peer_id());
    }
}
