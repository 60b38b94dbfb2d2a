//! A bounded map with clock (second-chance) eviction: the config digest → `created` cache of a
//! long-running client. A looked-up entry survives one sweep of the clock hand; an entry whose value is
//! still held elsewhere (a lookup in flight) is never evicted, so concurrent lookups of one key keep
//! sharing one value (one fetch).
//!
//! Must not: do I/O, or evict a value someone is still using.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

pub struct ClockCache<V> {
    capacity: usize,
    entries: HashMap<Arc<str>, Slot<V>>,
    /// The clock: keys in insertion order, the hand at the front.
    ring: VecDeque<Arc<str>>,
}

struct Slot<V> {
    value: Arc<V>,
    /// Looked up since the hand last passed: spared once.
    referenced: bool,
}

impl<V: Default> ClockCache<V> {
    pub fn new(capacity: usize) -> Self {
        ClockCache {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            ring: VecDeque::new(),
        }
    }

    /// The value for `key`, a new default one when absent (making room first when the cache is full).
    pub fn get_or_default(&mut self, key: &str) -> Arc<V> {
        if let Some(slot) = self.entries.get_mut(key) {
            slot.referenced = true;
            return slot.value.clone();
        }
        while self.entries.len() >= self.capacity && self.evict_one() {}
        let key: Arc<str> = Arc::from(key);
        let value = Arc::new(V::default());
        self.entries.insert(
            key.clone(),
            Slot {
                value: value.clone(),
                referenced: false,
            },
        );
        self.ring.push_back(key);
        value
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes the first entry under the hand that was not looked up since the last sweep and is not
    /// in use; false when there is none. Two turns of the clock at most; when every entry is in use,
    /// nothing is removed and the cache grows past its capacity for a while rather than split a shared
    /// lookup.
    fn evict_one(&mut self) -> bool {
        for _ in 0..2 * self.ring.len() {
            let Some(key) = self.ring.pop_front() else {
                return false;
            };
            let slot = self
                .entries
                .get_mut(&key)
                .expect("the ring and the map hold the same keys");
            if slot.referenced || Arc::strong_count(&slot.value) > 1 {
                slot.referenced = false;
                self.ring.push_back(key);
                continue;
            }
            self.entries.remove(&key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_capacity_and_evicts_the_entry_not_looked_up_again() {
        let mut cache: ClockCache<u32> = ClockCache::new(3);
        for key in ["a", "b", "c"] {
            cache.get_or_default(key);
        }
        // `a` and `c` are looked up again: `b` goes first.
        let a = Arc::as_ptr(&cache.get_or_default("a"));
        cache.get_or_default("c");
        cache.get_or_default("d");
        assert_eq!(cache.len(), 3);
        assert_eq!(Arc::as_ptr(&cache.get_or_default("a")), a, "a was kept");
        assert!(!cache.entries.contains_key("b"));
        for key in ["e", "f", "g", "h"] {
            cache.get_or_default(key);
            assert_eq!(cache.len(), 3);
        }
    }

    #[test]
    fn an_entry_in_use_is_never_evicted_so_concurrent_lookups_share_it() {
        let mut cache: ClockCache<u32> = ClockCache::new(2);
        let held = cache.get_or_default("in-flight");
        for index in 0..10 {
            cache.get_or_default(&format!("other-{index}"));
            assert!(Arc::ptr_eq(&held, &cache.get_or_default("in-flight")));
            assert_eq!(cache.len(), 2);
        }
        // Everything in use: the cache grows instead of splitting a lookup.
        let second = cache.get_or_default("other-9");
        let third = cache.get_or_default("third");
        assert_eq!(cache.len(), 3);
        drop((held, second, third));
        cache.get_or_default("fourth");
        assert_eq!(
            cache.len(),
            2,
            "back within capacity once the lookups are done"
        );
    }
}
