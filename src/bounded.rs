//! A shared map that stops growing at a fixed size: when full it starts over. For caches of
//! values that are cheap to recompute, where an LRU's bookkeeping would cost more than it saves.
//!
//! Hashing is foldhash (randomly seeded per map) rather than SipHash: these maps are looked up
//! on every request, and being bounded, a crafted set of colliding keys can slow one down by
//! at most its capacity.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use foldhash::fast::RandomState;
use thread_local::ThreadLocal;

/// The map; reads share a lock, writes take it.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    capacity: usize,
    entries: RwLock<HashMap<K, V, RandomState>>,
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

/// A [`BoundedMap`] with a smaller map per thread in front of it, for maps read on every
/// request. A read lock is itself a write, to the lock word: with two cores taking turns, a
/// look-up in one shared map cost about 170 ns against 28 ns on one core. A hit here takes only
/// the calling thread's own lock, on a cache line no other core writes.
pub struct ThreadCached<K: Send, V: Send> {
    shared: BoundedMap<K, V>,
    local: ThreadLocal<Local<K, V>>,
    local_capacity: usize,
    /// Bumped by `retain`: a value copied from `shared` while `retain` runs is not kept.
    generation: AtomicU64,
}

/// A mutex alone on its cache lines, for state that one thread writes on every request and
/// others rarely read (a write to a line another core also writes moves it between caches). A
/// poisoned lock is taken as it is: what these guard are caches and counts.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct PaddedMutex<T>(Mutex<T>);

impl<T> PaddedMutex<T> {
    /// Locks it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One thread's map.
type Local<K, V> = PaddedMutex<HashMap<K, V, RandomState>>;

impl<K: Send, V: Send> std::fmt::Debug for ThreadCached<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadCached")
            .field("local_capacity", &self.local_capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone + Send, V: Clone + Send> ThreadCached<K, V> {
    /// At most `capacity` entries shared, and `local_capacity` per thread in front of them.
    pub fn new(capacity: usize, local_capacity: usize) -> Self {
        ThreadCached {
            shared: BoundedMap::new(capacity),
            local: ThreadLocal::new(),
            local_capacity,
            generation: AtomicU64::new(0),
        }
    }

    /// A copy of the value of `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_with(key, V::clone)
    }

    /// `f` of the value of `key`, from this thread's map, else from the shared one (and then
    /// kept in this thread's).
    pub fn get_with<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        let local = self.local.get_or_default();
        if let Some(v) = local.lock().get(key) {
            return Some(f(v));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let v = self.shared.get(key)?;
        let r = f(&v);
        self.keep_local(local, key.clone(), v, generation);
        Some(r)
    }

    /// Stores `value`.
    pub fn insert(&self, key: K, value: V) {
        let generation = self.generation.load(Ordering::Acquire);
        self.shared.insert(key.clone(), value.clone());
        self.keep_local(self.local.get_or_default(), key, value, generation);
    }

    // `retain` filters `shared`, bumps the generation, then filters every thread's map under
    // its lock. A value read from `shared` before that filter is dropped here if the bump is
    // already visible, and otherwise inserted before `retain` reaches this thread's map.
    fn keep_local(&self, local: &Local<K, V>, key: K, value: V, generation: u64) {
        let mut map = local.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.local_capacity {
            map.clear();
        }
        map.insert(key, value);
    }

    /// Entries held in the shared map.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether the shared map holds none.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// Keeps only the entries `keep` accepts, in the shared map and every thread's.
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.shared.retain(&mut keep);
        self.generation.fetch_add(1, Ordering::AcqRel);
        for local in self.local.iter() {
            local.lock().retain(&mut keep);
        }
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

    #[test]
    fn thread_cached_serves_every_thread_and_retain_reaches_them_all() {
        let m = ThreadCached::new(100, 2);
        m.insert(1, "one");
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(m.get(&1), Some("one"), "from the shared map");
                assert_eq!(m.get(&1), Some("one"), "from this thread's");
                m.insert(2, "two");
            });
        });
        assert_eq!(m.get(&2), Some("two"));
        // A thread's map starts over when full; the shared map still has everything.
        m.insert(3, "three");
        m.insert(4, "four");
        assert_eq!(m.get_with(&1, |v| v.len()), Some(3));
        assert_eq!(m.local.get_or_default().lock().len(), 1);
        // `retain` filters every thread's map, not only the caller's.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(m.get(&3), Some("three")));
        });
        std::thread::scope(|s| {
            s.spawn(|| m.retain(|k, _| *k != 3));
        });
        assert_eq!(m.get(&3), None);
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(m.get(&3), None));
        });
        for local in m.local.iter() {
            assert!(!local.lock().contains_key(&3));
        }
        assert_eq!(m.get(&4), Some("four"));
    }
}
