//! The database on real sled files, reopened between steps, and the same rules on the memory store.

use hail::identity::Identity;
use hail::name::Name;
use hail::store::{
    CallDirection, CallOutcome, CallRecord, Contact, Database, MemoryStore, SledStore, Store, StoreError, Verification,
};

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn contact(n: &str, seed: u8) -> Contact {
    Contact::new(name(n), Identity::from_seed([seed; 32]).peer_id(), 1_700_000_000_000 + seed as u64)
}

fn call(id: &str, at: u64, seed: u8) -> CallRecord {
    CallRecord {
        call_id: id.into(),
        peer_id: Identity::from_seed([seed; 32]).peer_id(),
        contact: Some(name("bob")),
        direction: CallDirection::Outgoing,
        video: false,
        started_at_ms: at,
        answered_at_ms: Some(at + 1),
        ended_at_ms: at + 60_000,
        outcome: CallOutcome::Completed,
        group: None,
    }
}

/// Runs `step` on a database freshly opened from `dir` each time.
fn reopened(dir: &std::path::Path, step: impl FnOnce(&mut Database<SledStore>)) {
    let mut db = Database::open(SledStore::open(dir).unwrap()).unwrap();
    step(&mut db);
}

#[test]
fn contacts_crud_survives_reopening_the_sled_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");

    reopened(&path, |db| {
        db.add_contact(&contact("bob", 2)).unwrap();
        db.add_contact(&contact("carol", 3)).unwrap();
    });
    reopened(&path, |db| {
        let names: Vec<String> = db.contacts().unwrap().into_iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["bob", "carol"]);
        assert_eq!(db.contact(&name("bob")).unwrap().unwrap(), contact("bob", 2));
        db.rename_contact(&name("bob"), &name("robert")).unwrap();
    });
    reopened(&path, |db| {
        assert!(db.contact(&name("bob")).unwrap().is_none());
        let robert = db.contact(&name("robert")).unwrap().unwrap();
        assert_eq!(robert.peer_id, contact("bob", 2).peer_id);
        db.update_contact(&name("robert"), |c| {
            c.blocked = true;
            c.verification = Verification::Sas;
            c.last_seen_addresses = vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()];
        })
        .unwrap();
    });
    reopened(&path, |db| {
        let robert = db.contact_by_peer(&contact("bob", 2).peer_id).unwrap().unwrap();
        assert!(robert.blocked);
        assert_eq!(robert.verification, Verification::Sas);
        assert_eq!(robert.last_seen_addresses.len(), 1);
        db.remove_contact(&name("carol")).unwrap();
    });
    reopened(&path, |db| {
        let names: Vec<String> = db.contacts().unwrap().into_iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["robert"]);
    });
}

#[test]
fn history_and_settings_persist_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    reopened(&path, |db| {
        db.record_call(&call("b", 2_000, 2)).unwrap();
        db.record_call(&call("a", 1_000, 2)).unwrap();
        db.record_call(&call("c", 3_000, 3)).unwrap();
        db.set_setting("display_name", &"alice").unwrap();
    });
    reopened(&path, |db| {
        let ids: Vec<String> = db.calls(10).unwrap().into_iter().map(|c| c.call_id).collect();
        assert_eq!(ids, ["a", "b", "c"], "oldest first");
        let last: Vec<String> = db.calls(2).unwrap().into_iter().map(|c| c.call_id).collect();
        assert_eq!(last, ["b", "c"]);
        assert_eq!(db.setting::<String>("display_name").unwrap().as_deref(), Some("alice"));
        assert_eq!(db.setting::<String>("missing").unwrap(), None);
    });
}

/// The rules hold the same on both backends.
fn rules_hold<S: Store>(store: S) {
    let mut db = Database::open(store).unwrap();
    db.add_contact(&contact("bob", 2)).unwrap();
    db.add_contact(&contact("carol", 3)).unwrap();
    assert!(matches!(db.add_contact(&contact("bob", 4)), Err(StoreError::NameTaken(_))));
    assert!(matches!(db.add_contact(&contact("bobby", 2)), Err(StoreError::PeerTaken { .. })));
    assert!(matches!(db.rename_contact(&name("bob"), &name("carol")), Err(StoreError::NameTaken(_))));
    assert!(matches!(db.rename_contact(&name("zed"), &name("x")), Err(StoreError::NoSuchContact(_))));
    assert!(matches!(db.remove_contact(&name("zed")), Err(StoreError::NoSuchContact(_))));
    assert!(matches!(db.update_contact(&name("zed"), |_| {}), Err(StoreError::NoSuchContact(_))));
    // A refused operation changed nothing.
    assert_eq!(db.contacts().unwrap(), vec![contact("bob", 2), contact("carol", 3)]);
    // update_contact cannot rename behind the index's back.
    let updated = db.update_contact(&name("bob"), |c| c.name = name("mallory")).unwrap();
    assert_eq!(updated.name, name("bob"));
    assert!(db.contact(&name("mallory")).unwrap().is_none());
}

#[test]
fn rules_hold_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    rules_hold(SledStore::open(&dir.path().join("db")).unwrap());
}

#[test]
fn rules_hold_in_memory() {
    rules_hold(MemoryStore::new());
}

#[test]
fn a_database_from_a_newer_hail_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).unwrap();
        let mut db = Database::open(store).unwrap();
        db.add_contact(&contact("bob", 2)).unwrap();
    }
    {
        // Stamp a future schema, as a newer hail would.
        let db = sled::open(&path).unwrap();
        db.insert("schema_version", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    match Database::open(SledStore::open(&path).unwrap()) {
        Err(StoreError::NewerSchema { found: 99, supported }) => assert_eq!(supported, hail::store::SCHEMA_VERSION),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // Nothing was rewritten: the contact and the future stamp are still there.
    let db = sled::open(&path).unwrap();
    assert_eq!(db.get("schema_version").unwrap().unwrap().as_ref(), &99u32.to_be_bytes());
    assert!(db.open_tree("contacts").unwrap().get("bob").unwrap().is_some());
}

/// Writes 50 contacts, then overwrites part of the sled file `file` with garbage. Returns the damaged
/// bytes as they were written, to check nobody rewrote them.
fn damage(path: &std::path::Path, file: &str) -> Vec<u8> {
    {
        let mut db = Database::open(SledStore::open(path).unwrap()).unwrap();
        for i in 0..50u8 {
            db.add_contact(&contact(&format!("c{i}"), i + 10)).unwrap();
        }
    }
    let target = path.join(file);
    let mut bytes = std::fs::read(&target).unwrap();
    assert!(bytes.len() >= 16, "{file} is {} bytes", bytes.len());
    let start = bytes.len() / 4;
    let end = (start + 4096).min(bytes.len());
    bytes[start..end].fill(0xA5);
    std::fs::write(&target, &bytes).unwrap();
    bytes
}

fn open_and_list(path: &std::path::Path) -> Result<usize, StoreError> {
    SledStore::open(path).and_then(Database::open).and_then(|db| db.contacts().map(|c| c.len()))
}

#[test]
fn a_damaged_log_is_reported_not_silently_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    damage(&path, "db");
    let err = open_and_list(&path).expect_err("a log missing acknowledged writes must not open");
    let message = err.to_string();
    assert!(matches!(err, StoreError::CorruptFiles { .. }), "{err:?}");
    assert!(message.contains("acknowledged writes are missing") && message.contains("backup"), "{message}");
}

#[test]
fn a_damaged_config_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let damaged = damage(&path, "conf");
    let err = open_and_list(&path).expect_err("damaged conf");
    assert!(matches!(err, StoreError::CorruptFiles { .. }), "{err:?}");
    assert!(err.to_string().contains("left untouched"));
    assert_eq!(std::fs::read(path.join("conf")).unwrap(), damaged, "the damaged file was not rewritten");
}

#[test]
fn a_missing_schema_stamp_on_a_non_empty_database_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = sled::open(&path).unwrap();
        db.open_tree("contacts").unwrap().insert("bob", "{}").unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(Database::open(SledStore::open(&path).unwrap()), Err(StoreError::Corrupt { .. })));
}

/// A history written before group calls were kept (no `group` field) reads back from the sled
/// files beside a group call's record, which keeps who was in the call.
#[test]
fn an_old_history_record_reads_beside_a_group_calls_record() {
    use hail::store::{GroupCallPeer, Tree, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let bob = Identity::from_seed([2; 32]).peer_id();
    reopened(&path, |_| {});
    {
        // The record as the daemon wrote it before (the bytes, under the key it used).
        let store = SledStore::open(&path).unwrap();
        let old = format!(
            r#"{{"call_id":"old","peer_id":"{bob}","contact":"bob","direction":"incoming","video":false,"started_at_ms":500,"answered_at_ms":501,"ended_at_ms":9000,"outcome":{{"kind":"completed"}}}}"#
        );
        let mut key = 500u64.to_be_bytes().to_vec();
        key.extend_from_slice(b"old");
        store.apply(Tree::Calls, vec![Write::Put(key, old.into_bytes())]).unwrap();
    }
    let mut group = call("group", 1_000, 2);
    group.group = Some(vec![
        GroupCallPeer { peer_id: bob, contact: Some(name("bob")) },
        GroupCallPeer { peer_id: Identity::from_seed([3; 32]).peer_id(), contact: None },
    ]);
    reopened(&path, |db| db.record_call(&group).unwrap());
    reopened(&path, |db| {
        let calls = db.calls(10).unwrap();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!((calls[0].call_id.as_str(), calls[0].group.as_ref()), ("old", None));
        assert_eq!(calls[0].ended_at_ms, 9000);
        assert_eq!(calls[1], group);
    });
}
