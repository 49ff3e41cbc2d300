//! An in-memory [`Store`] for unit tests: same semantics as sled, nothing on disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Entries, Store, StoreError, Tree, Write};

type Trees = BTreeMap<Tree, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A [`Store`] that lives and dies with the value.
#[derive(Debug, Default)]
pub struct MemoryStore {
    trees: Mutex<Trees>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Trees) -> R) -> R {
        let mut guard = self.trees.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|t| t.get(&tree).and_then(|m| m.get(key).cloned())))
    }

    fn scan(&self, tree: Tree) -> Result<Entries, StoreError> {
        Ok(self.with(|t| t.get(&tree).map(|m| m.clone().into_iter().collect()).unwrap_or_default()))
    }

    fn scan_last(&self, tree: Tree, limit: usize) -> Result<Entries, StoreError> {
        let mut all = self.scan(tree)?;
        let skip = all.len().saturating_sub(limit);
        Ok(all.split_off(skip))
    }

    fn apply(&self, tree: Tree, batch: Vec<Write>) -> Result<(), StoreError> {
        self.with(|t| {
            let map = t.entry(tree).or_default();
            for w in batch {
                match w {
                    Write::Put(k, v) => {
                        map.insert(k, v);
                    }
                    Write::Delete(k) => {
                        map.remove(&k);
                    }
                }
            }
        });
        Ok(())
    }
}
