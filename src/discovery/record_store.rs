//! [`PeerRecordStore`]: the DHT record store. kad's `MemoryStore` refuses every new record once it
//! holds its maximum, so whoever fills it first (with throw-away keys, each record validly signed)
//! keeps everyone else's records out for an hour. This store makes room instead: it drops expired
//! records first, then the record stored (or refreshed) longest ago that is not our own. Honest
//! nodes republish every 10 minutes, so a record pushed out by a flood comes back; reads do not
//! count as use (anyone can read, so reads would let an attacker pin its junk).

use std::borrow::Cow;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::store::{self, MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

use super::lru::LruMap;

/// The bounded record store.
pub struct PeerRecordStore {
    inner: MemoryStore,
    local: PeerId,
    own_key: RecordKey,
    max_records: usize,
    max_value_bytes: usize,
    /// The stored keys, least recently stored first (always the same keys as `inner`).
    order: LruMap<RecordKey, ()>,
    evicted: u64,
}

impl std::fmt::Debug for PeerRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerRecordStore")
            .field("records", &self.order.len())
            .field("max_records", &self.max_records)
            .field("evicted", &self.evicted)
            .finish_non_exhaustive()
    }
}

impl PeerRecordStore {
    /// A store for `local`, whose own peer record has key `own_key` (never evicted for others'),
    /// holding at most `max_records` records of less than `max_value_bytes` bytes each. It stores no
    /// provider records (hail does not use them).
    pub fn new(local: PeerId, own_key: RecordKey, max_records: usize, max_value_bytes: usize) -> Self {
        let max_records = max_records.max(1);
        let inner = MemoryStore::with_config(
            local,
            MemoryStoreConfig { max_records, max_value_bytes, max_providers_per_key: 0, max_provided_keys: 0 },
        );
        PeerRecordStore {
            inner,
            local,
            own_key,
            max_records,
            max_value_bytes,
            order: LruMap::new(max_records + 1),
            evicted: 0,
        }
    }

    /// Records pushed out to make room since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn is_own(&self, record: &Record) -> bool {
        record.key == self.own_key || record.publisher == Some(self.local)
    }

    /// Stores `record` at time `now`, making room if the store is full.
    pub fn put_at(&mut self, record: Record, now: Instant) -> store::Result<()> {
        if record.value.len() >= self.max_value_bytes {
            return Err(store::Error::ValueTooLarge);
        }
        if self.inner.get(&record.key).is_none() && self.order.len() >= self.max_records {
            self.make_room(now)?;
        }
        let key = record.key.clone();
        self.inner.put(record)?;
        self.order.insert(key, ());
        Ok(())
    }

    /// Frees one slot: every expired record, or else the oldest one that is not ours.
    fn make_room(&mut self, now: Instant) -> store::Result<()> {
        let expired: Vec<RecordKey> =
            self.inner.records().filter(|r| r.is_expired(now)).map(|r| r.key.clone()).collect();
        if !expired.is_empty() {
            for key in &expired {
                self.remove(key);
            }
            self.evicted += expired.len() as u64;
            return Ok(());
        }
        let victim = self
            .order
            .keys_oldest_first()
            .find(|k| self.inner.get(k).is_some_and(|r| !self.is_own(&r)))
            .cloned()
            .ok_or(store::Error::MaxRecords)?;
        self.remove(&victim);
        self.evicted += 1;
        Ok(())
    }
}

impl RecordStore for PeerRecordStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.put_at(r, Instant::now())
    }

    fn remove(&mut self, k: &RecordKey) {
        self.inner.remove(k);
        self.order.remove(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        self.inner.add_provider(record)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.inner.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.inner.remove_provider(k, p)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(n: u32, expires: Instant) -> Record {
        let mut r = Record::new(RecordKey::new(&format!("record {n}")), vec![1, 2, 3]);
        r.expires = Some(expires);
        r
    }

    fn store(max: usize) -> (PeerRecordStore, RecordKey) {
        let local = PeerId::random();
        let own_key = RecordKey::new(&"our own record");
        (PeerRecordStore::new(local, own_key.clone(), max, 100), own_key)
    }

    #[test]
    fn a_full_store_takes_new_records_by_dropping_the_oldest_and_keeps_our_own() {
        let (mut s, own_key) = store(4);
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let mut own = Record::new(own_key.clone(), vec![9]);
        own.expires = Some(later);
        s.put_at(own, now).unwrap();
        for n in 0..3 {
            s.put_at(record(n, later), now).unwrap();
        }
        // Full. A newcomer gets in; the oldest record that is not ours (0) makes room.
        s.put_at(record(100, later), now).expect("a full store still takes new records");
        assert_eq!(s.len(), 4);
        assert!(s.get(&own_key).is_some(), "our own record stays");
        assert!(s.get(&record(0, later).key).is_none(), "the oldest went");
        assert!(s.get(&record(100, later).key).is_some());
        // A refreshed record (republished by its owner) counts as new: 1 is refreshed, 2 goes next.
        s.put_at(record(1, later), now).unwrap();
        s.put_at(record(101, later), now).unwrap();
        assert!(s.get(&record(1, later).key).is_some());
        assert!(s.get(&record(2, later).key).is_none());
        // A flood of a thousand newcomers never pushes our own record out.
        for n in 1000..2000 {
            s.put_at(record(n, later), now).unwrap();
        }
        assert_eq!(s.len(), 4);
        assert!(s.get(&own_key).is_some());
        assert_eq!(s.evicted(), 2 + 1000);
    }

    #[test]
    fn expired_records_go_before_live_ones() {
        let (mut s, _) = store(3);
        let now = Instant::now();
        let soon = now + Duration::from_secs(10);
        let later = now + Duration::from_secs(3600);
        s.put_at(record(0, later), now).unwrap();
        s.put_at(record(1, soon), now).unwrap();
        s.put_at(record(2, soon), now).unwrap();
        // At `soon` both short-lived records have expired: they make room, the older live one stays.
        let then = soon + Duration::from_secs(1);
        s.put_at(record(3, later), then).unwrap();
        assert!(s.get(&record(0, later).key).is_some(), "a live record outlives expired newer ones");
        assert!(s.get(&record(1, soon).key).is_none() && s.get(&record(2, soon).key).is_none());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn oversized_records_are_refused_without_evicting_anything() {
        let (mut s, _) = store(1);
        let now = Instant::now();
        s.put_at(record(0, now + Duration::from_secs(60)), now).unwrap();
        let big = Record::new(RecordKey::new(&"big"), vec![0; 100]);
        assert!(matches!(s.put_at(big, now), Err(store::Error::ValueTooLarge)));
        assert_eq!(s.len(), 1);
        assert_eq!(s.evicted(), 0);
        // kad removing a record keeps the bookkeeping in step.
        s.remove(&record(0, now).key);
        assert!(s.is_empty());
        assert_eq!(s.records().count(), 0);
    }
}
