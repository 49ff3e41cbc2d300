//! [`LruMap`]: a map with a capacity that forgets its least recently used entry to make room,
//! instead of refusing or clearing everything (which would hand an attacker who fills it a reset of
//! everyone's state).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A bounded map; inserting into a full map evicts the least recently used entry. Inserting or
/// reading through [`LruMap::get`] counts as use; [`LruMap::peek`] does not.
#[derive(Debug, Clone)]
pub struct LruMap<K, V> {
    capacity: usize,
    /// Entry → (value, its use stamp).
    entries: HashMap<K, (V, u64)>,
    /// Use stamp → entry, oldest first.
    order: BTreeMap<u64, K>,
    next_stamp: u64,
}

impl<K: Hash + Eq + Clone, V> LruMap<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        LruMap { capacity: capacity.max(1), entries: HashMap::new(), order: BTreeMap::new(), next_stamp: 0 }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// Inserts or replaces `key`, making it the most recently used; returns the entry evicted to
    /// make room, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        let stamp = self.stamp();
        if let Some((old_value, old_stamp)) = self.entries.get_mut(&key) {
            *old_value = value;
            let previous = std::mem::replace(old_stamp, stamp);
            self.order.remove(&previous);
            self.order.insert(stamp, key);
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity { self.pop_least_recent() } else { None };
        self.entries.insert(key.clone(), (value, stamp));
        self.order.insert(stamp, key);
        evicted
    }

    /// The value of `key`, marking it used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let stamp = self.stamp();
        let (_, old_stamp) = self.entries.get_mut(key)?;
        let previous = std::mem::replace(old_stamp, stamp);
        if let Some(k) = self.order.remove(&previous) {
            self.order.insert(stamp, k);
        }
        self.entries.get(key).map(|(v, _)| v)
    }

    /// The value of `key`, without marking it used.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, stamp) = self.entries.remove(key)?;
        self.order.remove(&stamp);
        Some(value)
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_least_recent(&mut self) -> Option<(K, V)> {
        let (_, key) = self.order.pop_first()?;
        let (value, _) = self.entries.remove(&key)?;
        Some((key, value))
    }

    /// Keeps only the entries `keep` approves.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|k, (v, stamp)| {
            let kept = keep(k, v);
            if !kept {
                order.remove(stamp);
            }
            kept
        });
    }

    /// The keys, least recently used first.
    pub fn keys_oldest_first(&self) -> impl Iterator<Item = &K> {
        self.order.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_evicts_the_least_recently_used_entry_not_everything() {
        let mut m = LruMap::new(3);
        for i in 0..3 {
            assert_eq!(m.insert(i, i * 10), None);
        }
        // Reading 0 makes 1 the least recently used.
        assert_eq!(m.get(&0), Some(&0));
        assert_eq!(m.insert(3, 30), Some((1, 10)));
        assert_eq!(m.len(), 3, "bounded, and not cleared");
        assert_eq!(m.peek(&0), Some(&0));
        assert_eq!(m.peek(&1), None);
        // Replacing an entry refreshes it without evicting anything.
        assert_eq!(m.insert(2, 21), None);
        assert_eq!(m.insert(4, 40), Some((0, 0)), "0 was used before 2 and 3");
        assert_eq!(m.keys_oldest_first().copied().collect::<Vec<_>>(), vec![3, 2, 4]);
        // Peeking does not count as use.
        assert_eq!(m.peek(&3), Some(&30));
        assert_eq!(m.insert(5, 50), Some((3, 30)));
    }

    #[test]
    fn thousands_of_inserts_stay_within_the_capacity_and_keep_the_newest() {
        let mut m = LruMap::new(4096);
        for i in 0..10_000u32 {
            m.insert(i, ());
            assert!(m.len() <= 4096);
        }
        assert_eq!(m.len(), 4096);
        assert!(m.peek(&9_999).is_some() && m.peek(&(10_000 - 4096)).is_some());
        assert!(m.peek(&(10_000 - 4097)).is_none());
    }

    #[test]
    fn remove_and_retain_keep_the_order_consistent() {
        let mut m = LruMap::new(3);
        m.insert("a", 1);
        m.insert("b", 2);
        m.insert("c", 3);
        assert_eq!(m.remove(&"a"), Some(1));
        m.retain(|_, v| *v != 2);
        assert_eq!(m.len(), 1);
        m.insert("d", 4);
        m.insert("e", 5);
        assert_eq!(m.insert("f", 6), Some(("c", 3)));
        assert_eq!(m.pop_least_recent(), Some(("d", 4)));
        assert!(!m.is_empty());
        assert_eq!(m.capacity(), 3);
    }
}
