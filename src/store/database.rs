//! The typed database on top of a [`Store`]: schema check, contacts, history, settings.

use libp2p_identity::PeerId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CallRecord, Contact, Store, StoreError, Tree, Write};
use crate::name::Name;

/// The schema this build writes and understands.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

/// Contacts, history and settings with their rules, over any [`Store`].
#[derive(Debug)]
pub struct Database<S: Store> {
    store: S,
}

impl<S: Store> Database<S> {
    /// Opens the database: a new one is stamped with [`SCHEMA_VERSION`]; an existing one must carry a
    /// version this build understands. Nothing is written to a database that fails the check.
    pub fn open(store: S) -> Result<Self, StoreError> {
        match store.get(Tree::Meta, SCHEMA_KEY)? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt { what: "schema version".into() })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { found, supported: SCHEMA_VERSION });
                }
                if found == 0 {
                    return Err(StoreError::Corrupt { what: "schema version 0".into() });
                }
                // Versions below SCHEMA_VERSION would be migrated here; 1 is the first.
            }
            None => {
                for tree in [Tree::Contacts, Tree::Calls, Tree::Settings] {
                    if !store.scan_last(tree, 1)?.is_empty() {
                        return Err(StoreError::Corrupt {
                            what: "schema version missing from a non-empty database".into(),
                        });
                    }
                }
                store
                    .apply(Tree::Meta, vec![Write::Put(SCHEMA_KEY.to_vec(), SCHEMA_VERSION.to_be_bytes().to_vec())])?;
            }
        }
        Ok(Database { store })
    }

    /// Every contact, by name.
    pub fn contacts(&self) -> Result<Vec<Contact>, StoreError> {
        self.store.scan(Tree::Contacts)?.into_iter().map(|(k, v)| decode(&k, &v, "contact")).collect()
    }

    /// The contact called `name`.
    pub fn contact(&self, name: &Name) -> Result<Option<Contact>, StoreError> {
        let key = name.as_str().as_bytes();
        self.store.get(Tree::Contacts, key)?.map(|v| decode(key, &v, "contact")).transpose()
    }

    /// The contact with this PeerId.
    pub fn contact_by_peer(&self, peer: &PeerId) -> Result<Option<Contact>, StoreError> {
        Ok(self.contacts()?.into_iter().find(|c| c.peer_id == *peer))
    }

    /// Adds a contact. Names are unique, and a PeerId is in the book at most once.
    pub fn add_contact(&mut self, contact: &Contact) -> Result<(), StoreError> {
        if self.contact(&contact.name)?.is_some() {
            return Err(StoreError::NameTaken(contact.name.clone()));
        }
        if let Some(existing) = self.contact_by_peer(&contact.peer_id)? {
            return Err(StoreError::PeerTaken { peer: contact.peer_id, name: existing.name });
        }
        self.store.apply(Tree::Contacts, vec![put_contact(contact)])
    }

    /// Renames a contact, atomically.
    pub fn rename_contact(&mut self, old: &Name, new: &Name) -> Result<Contact, StoreError> {
        let contact = self.contact(old)?.ok_or_else(|| StoreError::NoSuchContact(old.clone()))?;
        if old == new {
            return Ok(contact);
        }
        if self.contact(new)?.is_some() {
            return Err(StoreError::NameTaken(new.clone()));
        }
        let contact = contact.renamed(new.clone());
        self.store
            .apply(Tree::Contacts, vec![Write::Delete(old.as_str().as_bytes().to_vec()), put_contact(&contact)])?;
        Ok(contact)
    }

    /// Changes a contact in place (blocked flag, verification, last seen...). The name cannot change
    /// here: use [`Database::rename_contact`].
    pub fn update_contact(&mut self, name: &Name, change: impl FnOnce(&mut Contact)) -> Result<Contact, StoreError> {
        let mut contact = self.contact(name)?.ok_or_else(|| StoreError::NoSuchContact(name.clone()))?;
        change(&mut contact);
        let contact = contact.renamed(name.clone());
        self.store.apply(Tree::Contacts, vec![put_contact(&contact)])?;
        Ok(contact)
    }

    /// Removes a contact and returns what it was.
    pub fn remove_contact(&mut self, name: &Name) -> Result<Contact, StoreError> {
        let contact = self.contact(name)?.ok_or_else(|| StoreError::NoSuchContact(name.clone()))?;
        self.store.apply(Tree::Contacts, vec![Write::Delete(name.as_str().as_bytes().to_vec())])?;
        Ok(contact)
    }

    /// Appends a call to the history.
    pub fn record_call(&mut self, call: &CallRecord) -> Result<(), StoreError> {
        self.store.apply(Tree::Calls, vec![Write::Put(call.key(), encode(call))])
    }

    /// The last `limit` calls, oldest first.
    pub fn calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.store.scan_last(Tree::Calls, limit)?.into_iter().map(|(k, v)| decode(&k, &v, "call")).collect()
    }

    /// A setting, if set.
    pub fn setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.store.get(Tree::Settings, key.as_bytes())?.map(|v| decode(key.as_bytes(), &v, "setting")).transpose()
    }

    /// Stores a setting.
    pub fn set_setting<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), StoreError> {
        self.store.apply(Tree::Settings, vec![Write::Put(key.as_bytes().to_vec(), encode(value))])
    }
}

fn put_contact(contact: &Contact) -> Write {
    Write::Put(contact.name.as_str().as_bytes().to_vec(), encode(contact))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize to JSON")
}

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8], kind: &str) -> Result<T, StoreError> {
    serde_json::from_slice(value)
        .map_err(|_| StoreError::Corrupt { what: format!("{kind} '{}'", String::from_utf8_lossy(key)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::store::MemoryStore;

    fn bob() -> Contact {
        Contact::new(Name::parse("bob").unwrap(), Identity::from_seed([2; 32]).peer_id(), 1)
    }

    #[test]
    fn a_peer_is_in_the_book_once() {
        let mut db = Database::open(MemoryStore::new()).unwrap();
        db.add_contact(&bob()).unwrap();
        let mut twin = bob();
        twin.name = Name::parse("robert").unwrap();
        assert!(matches!(db.add_contact(&twin), Err(StoreError::PeerTaken { .. })));
        assert!(matches!(db.add_contact(&bob()), Err(StoreError::NameTaken(_))));
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let store = MemoryStore::new();
        store.apply(Tree::Meta, vec![Write::Put(SCHEMA_KEY.to_vec(), 9u32.to_be_bytes().to_vec())]).unwrap();
        match Database::open(store) {
            Err(StoreError::NewerSchema { found: 9, supported: SCHEMA_VERSION }) => {}
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }

    #[test]
    fn a_damaged_record_is_reported_not_skipped() {
        let mut db = Database::open(MemoryStore::new()).unwrap();
        db.add_contact(&bob()).unwrap();
        db.store.apply(Tree::Contacts, vec![Write::Put(b"carol".to_vec(), b"{not json".to_vec())]).unwrap();
        let err = db.contacts().unwrap_err();
        assert!(err.to_string().contains("carol"), "{err}");
    }
}
