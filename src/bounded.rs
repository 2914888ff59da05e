//! A shared map that stops growing at a fixed size: when full it starts over. For caches of
//! values that are cheap to recompute, where an LRU's bookkeeping would cost more than it saves.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// The map; reads share a lock, writes take it.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    capacity: usize,
    entries: RwLock<HashMap<K, V>>,
}

impl<K: Eq + Hash, V: Clone> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            capacity,
            entries: RwLock::new(HashMap::default()),
        }
    }

    /// A copy of the value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.get_with(key, V::clone)
    }

    /// `f` of the value of `key`, applied under the read lock: no copy of the value itself
    /// (for values whose clone touches shared memory, such as an `Arc`'s count).
    pub fn get_with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map(f)
    }

    /// Stores `value`, first emptying the map when it is full.
    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// The value of `key`, made by `make` and stored when absent.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce(&K) -> V) -> V {
        if let Some(v) = self.get(&key) {
            return v;
        }
        let v = make(&key);
        self.insert(key, v.clone());
        v
    }

    /// Keeps only the entries `keep` accepts.
    pub fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(keep);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_over_when_full() {
        let m = BoundedMap::new(3);
        for i in 0..3 {
            m.insert(i, i * 10);
        }
        assert_eq!((m.len(), m.get(&2)), (3, Some(20)));
        m.insert(3, 30);
        assert_eq!((m.len(), m.get(&0), m.get(&3)), (1, None, Some(30)));
        assert_eq!(m.get_or_insert_with(3, |_| 99), 30, "present: kept");
        assert_eq!(m.get_or_insert_with(4, |k| k * 10), 40, "absent: made");
        assert_eq!(m.get(&4), Some(40));
        assert_eq!(
            (m.get_with(&4, |v| v + 1), m.get_with(&5, |v| v + 1)),
            (Some(41), None)
        );
        m.retain(|k, _| *k < 3);
        assert!(m.is_empty());
    }
}
